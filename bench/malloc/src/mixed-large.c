/*
 * mixed-large: mostly small blocks, a few multi-MiB ones, reallocs, aligned
 * allocations, and frees by other threads.
 *
 * Not one of mimalloc-bench's programs: the shape comes from goheap's issue
 * 13, which found that a mixed program of this kind spent seconds of system
 * time in madvise under goheap, where mstress (whose largest blocks are
 * rare and under 5 MB) hardly shows it. It is what a server that mostly
 * handles small requests but now and then builds a large buffer does:
 *
 *     mixed-large THREADS OPS
 *
 * Each of THREADS threads owns 4096 slots and makes OPS operations. An
 * operation picks a random slot. If the slot holds a block, with probability
 * 1/8 the block is resized with realloc (to a new size of the same kind) and
 * stays, otherwise it is freed. An empty slot (or the freed one) gets a new
 * block: 99.8 % small (8..1024 B, small sizes likelier), 0.2 % large (1..9
 * MiB, uniform); one allocation in 20 is posix_memalign with an alignment of
 * 16..4096 B. With probability 1/8 the operation then swaps its slot with a
 * random slot of a shared 1024-slot exchange array, so blocks are freed and
 * resized by threads other than the one that allocated them. At the end each
 * thread frees what it holds and the main thread empties the exchange array.
 *
 * Every byte of a new block is written (a large buffer is filled, as a
 * program would), and realloc's growth too. Each block starts with its size
 * and a cookie, and ends with a byte derived from the size.
 *
 * Check: header and last byte are read back before every free and after
 * every realloc (which must keep the old contents up to the smaller size),
 * and an aligned block's address must have its alignment.
 */
#include "common.h"

#include <pthread.h>
#include <stdatomic.h>

#define SLOTS 4096
#define EXCHANGE 1024
#define COOKIE 0x9fb21c651e98df25ULL
#define MIB ((size_t)1 << 20)

static _Atomic(uint64_t *) exchange[EXCHANGE];
static atomic_ullong errors, large_allocs;
static long ops_per_thread;

static size_t draw_size(rng_t *r, int large)
{
    if (large)
        return MIB + (size_t)rng_below(r, (uint32_t)(8 * MIB));
    /* 8..1024 B, the square of a uniform draw: small sizes are likelier. */
    double u = rng_unit(r);
    return 8 + (size_t)(u * u * 1016.0);
}

static uint8_t tail_of(size_t n)
{
    return (uint8_t)((n * 0x9e3779b97f4a7c15ULL) >> 56);
}

/* Writes the header and the last byte; fill says whether to write every byte between. */
static void stamp(uint64_t *p, size_t n, size_t from)
{
    p[0] = n ^ COOKIE;
    p[1] = (uint64_t)(uintptr_t)p ^ COOKIE;
    if (from < 16)
        from = 16;
    if (n > from)
        memset((uint8_t *)p + from, 0x5a, n - from);
    ((uint8_t *)p)[n - 1] = tail_of(n);
}

/* Checks the header; returns the block's size, or 0 after counting an error. */
static size_t check(const uint64_t *p)
{
    size_t n = (size_t)(p[0] ^ COOKIE);
    if (n < 16 || n > 10 * MIB || ((const uint8_t *)p)[n - 1] != tail_of(n)) {
        atomic_fetch_add(&errors, 1);
        return 0;
    }
    return n;
}

static uint64_t *new_block(rng_t *r)
{
    int large = rng_below(r, 1000) < 2;
    size_t n = draw_size(r, large);
    if (n < 16)
        n = 16;
    void *p;
    if (rng_below(r, 20) == 0) {
        size_t align = (size_t)16 << rng_below(r, 9); /* 16..4096 */
        if (posix_memalign(&p, align, n) != 0) {
            printf("check: FAILED posix_memalign(%zu, %zu)\n", align, n);
            exit(1);
        }
        if ((uintptr_t)p % align != 0)
            atomic_fetch_add(&errors, 1);
    } else {
        p = must_malloc(n);
    }
    if (large)
        atomic_fetch_add(&large_allocs, 1);
    stamp(p, n, 0);
    return p;
}

static void free_block(uint64_t *p)
{
    if (p == NULL)
        return;
    check(p);
    free(p);
}

static uint64_t *resize(rng_t *r, uint64_t *p)
{
    size_t old = check(p);
    if (old == 0)
        return p;
    size_t n = draw_size(r, old >= MIB);
    if (n < 16)
        n = 16;
    uint64_t *q = realloc(p, n);
    if (q == NULL) {
        printf("check: FAILED realloc(%zu)\n", n);
        exit(1);
    }
    /* The old contents up to the smaller size must have moved with the block. */
    size_t keep = old < n ? old : n;
    if (q[0] != (old ^ COOKIE) || (keep >= 18 && ((uint8_t *)q)[keep - 2] != 0x5a))
        atomic_fetch_add(&errors, 1);
    stamp(q, n, keep - 1);
    return q;
}

static void *worker(void *arg)
{
    rng_t r = rng_seed((uint64_t)(uintptr_t)arg * 0x100000001b3ULL + 17);
    uint64_t **slot = calloc(SLOTS, sizeof *slot);
    if (slot == NULL) {
        printf("check: FAILED calloc\n");
        exit(1);
    }
    for (long i = 0; i < ops_per_thread; i++) {
        uint32_t k = rng_below(&r, SLOTS);
        if (slot[k] != NULL && rng_below(&r, 8) == 0) {
            slot[k] = resize(&r, slot[k]);
        } else {
            free_block(slot[k]);
            slot[k] = new_block(&r);
        }
        if (rng_below(&r, 8) == 0)
            slot[k] = atomic_exchange(&exchange[rng_below(&r, EXCHANGE)], slot[k]);
    }
    for (uint32_t k = 0; k < SLOTS; k++)
        free_block(slot[k]);
    free(slot);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: mixed-large THREADS OPS\n");
        return 2;
    }
    int nthreads = (int)arg_long(argc, argv, 1, 0);
    ops_per_thread = arg_long(argc, argv, 2, 0);
    if (nthreads < 1) {
        fprintf(stderr, "mixed-large: need THREADS >= 1\n");
        return 2;
    }
    print_malloc_source();
    pthread_t *t = must_malloc((size_t)nthreads * sizeof *t);
    double t0 = now_s();
    for (int i = 0; i < nthreads; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1)) != 0) {
            printf("check: FAILED pthread_create\n");
            return 1;
        }
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    for (int j = 0; j < EXCHANGE; j++)
        free_block(atomic_exchange(&exchange[j], NULL));
    printf("elapsed: %.3f s, %ld operations, %llu large allocations\n", now_s() - t0,
           ops_per_thread * nthreads, (unsigned long long)atomic_load(&large_allocs));
    free(t);
    return finish(atomic_load(&errors), "header and last byte of every block, realloc contents, alignment");
}
