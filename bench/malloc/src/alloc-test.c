/*
 * alloc-test: allocation-heavy random replacement with Pareto-distributed sizes.
 *
 * Imitates alloc-test by OLogN Technologies / ithare.com ("Testing memory
 * allocators: ptmalloc2 vs tcmalloc vs hoard vs jemalloc", 2018) as
 * mimalloc-bench runs it:
 *
 *     alloc-test THREADS [ALLOCS_PER_THREAD]
 *     (bench.sh: alloc-test 1  and  alloc-test min(P,16); 100 million
 *      allocations per thread)
 *
 * Each thread keeps 16384 slots. Every step picks a random slot, frees the
 * block in it (if any) and mallocs a new one whose size follows a Pareto
 * distribution (shape 1.2, from 8 bytes, cut off at 1 KiB: half the blocks are
 * under 15 bytes, one in fifty over 200), stamping its first 8 bytes and its
 * last byte. alloc-test 1 and alloc-test P taking the same time means the
 * allocator scales linearly.
 *
 * Check: both stamps are read back before every free.
 */
#include "common.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>

#define SLOTS 16384
#define MAGIC 0x9b05688c2b3e6c1fULL

static uint16_t sizes[4096];
static size_t per_thread;
static atomic_ullong errors;

/* The first word, and the last byte when it lies beyond the first word. */
static inline void stamp(uint64_t *p, size_t size, size_t i)
{
    p[0] = i ^ MAGIC;
    if (size > 8)
        ((unsigned char *)p)[size - 1] = (unsigned char)i;
}

static inline int stamp_ok(const uint64_t *p, size_t size, size_t i)
{
    return p[0] == (i ^ MAGIC) && (size <= 8 || ((const unsigned char *)p)[size - 1] == (unsigned char)i);
}

static void *worker(void *arg)
{
    rng_t r = rng_seed(0xa110c + (uint64_t)(intptr_t)arg);
    uint64_t **slot = calloc(SLOTS, sizeof *slot);
    uint16_t *len = calloc(SLOTS, sizeof *len);
    uint64_t bad = 0;
    if (slot == NULL || len == NULL) {
        printf("check: FAILED calloc\n");
        exit(1);
    }
    for (size_t n = 0; n < per_thread; n++) {
        uint64_t x = rng_next(&r);
        size_t i = x & (SLOTS - 1);
        uint64_t *p = slot[i];
        if (p) {
            bad += !stamp_ok(p, len[i], i);
            free(p);
        }
        uint16_t size = sizes[(x >> 32) & 4095];
        p = must_malloc(size);
        stamp(p, size, i);
        slot[i] = p;
        len[i] = size;
    }
    for (size_t i = 0; i < SLOTS; i++) {
        uint64_t *p = slot[i];
        if (p) {
            bad += !stamp_ok(p, len[i], i);
            free(p);
        }
    }
    free(slot);
    free(len);
    atomic_fetch_add(&errors, bad);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: alloc-test THREADS [ALLOCS_PER_THREAD]\n");
        return 2;
    }
    int nthreads = (int)arg_long(argc, argv, 1, 0);
    per_thread = (size_t)arg_long(argc, argv, 2, 100000000);
    if (nthreads < 1) {
        fprintf(stderr, "alloc-test: need THREADS >= 1\n");
        return 2;
    }
    print_malloc_source();

    rng_t r = rng_seed(1);
    for (int i = 0; i < 4096; i++) {
        double s = 8.0 / pow(1.0 - rng_unit(&r), 1.0 / 1.2);
        sizes[i] = (uint16_t)(s > 1024.0 ? 1024.0 : s);
    }

    pthread_t *t = must_malloc((size_t)nthreads * sizeof *t);
    double t0 = now_s();
    for (int i = 0; i < nthreads; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i) != 0) {
            printf("check: FAILED pthread_create\n");
            return 1;
        }
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    printf("elapsed: %.3f s for %zu allocations per thread\n", now_s() - t0, per_thread);
    free(t);
    return finish(atomic_load(&errors), "block stamps read back before free");
}
