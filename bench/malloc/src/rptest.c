/*
 * rptest: a steady multi-threaded malloc/free mix with batches handed to
 * other threads to free.
 *
 * Imitates the rpmalloc benchmark (Mattias Jansson, rpmalloc-benchmark) as
 * mimalloc-bench runs it as rptest:
 *
 *     rptest THREADS MODE SIZE_MODE CROSS_RATE LOOPS ALLOCS OPS MIN_SIZE MAX_SIZE
 *     (bench.sh: rptest P 0 1 2 500 1000 100 8 16000)
 *
 * MODE must be 0 (random sizes). SIZE_MODE 0 draws sizes uniformly from
 * [MIN_SIZE, MAX_SIZE], 1 with a density falling linearly to zero at MAX_SIZE
 * (small blocks common, large ones rare). Each thread owns ALLOCS slots and
 * runs LOOPS loops. A loop first frees the batches other threads handed it,
 * then frees the blocks in 25-80 % of OPS random slots, then mallocs new
 * blocks into 30-100 % of OPS random slots (freeing what was there), so about
 * half the slots stay live. Every CROSS_RATE-th loop it also mallocs an extra
 * batch of that many blocks and hands it to the next thread, which frees it.
 * A thread that has finished its loops keeps freeing what it is handed until
 * all threads have finished. Like the original, each block gets its size
 * written at the start, one byte in every 4 KiB page and its last byte, so
 * that its pages are really used. The program prints memory operations
 * (mallocs + frees) per second and relative time = seconds per 10^8
 * operations. (The original's loop is also this short; mimalloc-bench, too,
 * takes its time from the throughput.)
 *
 * Check: size word, page bytes and last byte are read back before every free.
 */
#include "common.h"

#include <pthread.h>
#include <stdatomic.h>

#define MAILBOX 32
#define MAGIC 0x510e527fade682d1ULL

typedef struct {
    size_t n;
    void *p[];
} batch_t;

typedef struct {
    batch_t *batch[MAILBOX];
    int n;
} mailbox_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static pthread_barrier_t start;
static mailbox_t *box;
static int nthreads, producing;
static size_t loops, allocs, ops, cross_rate;
static uint32_t sizes[4096];
static atomic_ullong errors, memops;

static void *alloc_block(rng_t *r)
{
    size_t size = sizes[rng_next(r) & 4095];
    unsigned char *p = must_malloc(size);
    ((uint64_t *)p)[0] = size ^ MAGIC;
    for (size_t k = 4096; k < size - 1; k += 4096)
        p[k] = (unsigned char)(k >> 12) ^ 0x3c;
    if (size > 8)
        p[size - 1] = (unsigned char)size;
    return p;
}

static uint64_t free_block(void *vp)
{
    unsigned char *p = vp;
    size_t size = (size_t)(((uint64_t *)p)[0] ^ MAGIC);
    uint64_t bad = 0;
    if (size < 8 || size > (1u << 30)) {
        bad = 1;
    } else {
        for (size_t k = 4096; k < size - 1; k += 4096)
            bad += p[k] != (unsigned char)((unsigned char)(k >> 12) ^ 0x3c);
        if (size > 8)
            bad += p[size - 1] != (unsigned char)size;
    }
    free(p);
    return bad;
}

/* Free a handed-over batch; returns the number of frees. */
static uint64_t free_batch(batch_t *b, uint64_t *bad)
{
    size_t n = b->n;
    for (size_t i = 0; i < n; i++)
        *bad += free_block(b->p[i]);
    free(b);
    return n + 1;
}

/* Free everything in my mailbox (called with mu held; drops and retakes it). */
static uint64_t drain(int me, uint64_t *bad)
{
    batch_t *got[MAILBOX];
    int n = box[me].n;
    memcpy(got, box[me].batch, (size_t)n * sizeof got[0]);
    box[me].n = 0;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&mu);
    uint64_t done = 0;
    for (int i = 0; i < n; i++)
        done += free_batch(got[i], bad);
    pthread_mutex_lock(&mu);
    return done;
}

/* Hand a batch to thread `to`; while its mailbox is full, free my own. */
static uint64_t send(int me, int to, batch_t *b, uint64_t *bad)
{
    uint64_t done = 0;
    pthread_mutex_lock(&mu);
    while (box[to].n == MAILBOX) {
        if (box[me].n)
            done += drain(me, bad);
        else
            pthread_cond_wait(&changed, &mu);
    }
    box[to].batch[box[to].n++] = b;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&mu);
    return done;
}

static void *worker(void *arg)
{
    int me = (int)(intptr_t)arg, to = me;
    rng_t r = rng_seed(0x1234 + (uint64_t)me);
    uint64_t bad = 0, done = 0;
    void **slot = calloc(allocs, sizeof *slot);
    if (slot == NULL) {
        printf("check: FAILED calloc\n");
        exit(1);
    }
    pthread_barrier_wait(&start);
    for (size_t loop = 0; loop < loops; loop++) {
        pthread_mutex_lock(&mu);
        if (box[me].n)
            done += drain(me, &bad);
        pthread_mutex_unlock(&mu);

        size_t nfree = ops * (25 + rng_below(&r, 56)) / 100;
        for (size_t i = 0; i < nfree; i++) {
            size_t j = rng_below(&r, (uint32_t)allocs);
            if (slot[j]) {
                bad += free_block(slot[j]);
                slot[j] = NULL;
                done++;
            }
        }
        size_t nalloc = ops * (30 + rng_below(&r, 71)) / 100;
        for (size_t i = 0; i < nalloc; i++) {
            size_t j = rng_below(&r, (uint32_t)allocs);
            if (slot[j]) {
                bad += free_block(slot[j]);
                done++;
            }
            slot[j] = alloc_block(&r);
            done++;
        }
        if (nthreads > 1 && loop % cross_rate == 0) {
            batch_t *b = must_malloc(sizeof *b + nalloc * sizeof b->p[0]);
            b->n = nalloc;
            for (size_t i = 0; i < nalloc; i++)
                b->p[i] = alloc_block(&r);
            done += nalloc + 1;
            to = (to + 1) % nthreads;
            if (to == me)
                to = (to + 1) % nthreads;
            done += send(me, to, b, &bad);
        }
    }
    for (size_t j = 0; j < allocs; j++)
        if (slot[j]) {
            bad += free_block(slot[j]);
            done++;
        }
    free(slot);

    /* Keep freeing what others hand me until nobody produces any more. */
    pthread_mutex_lock(&mu);
    producing--;
    pthread_cond_broadcast(&changed);
    while (producing > 0 || box[me].n > 0) {
        if (box[me].n)
            done += drain(me, &bad);
        else
            pthread_cond_wait(&changed, &mu);
    }
    pthread_mutex_unlock(&mu);
    atomic_fetch_add(&errors, bad);
    atomic_fetch_add(&memops, done);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 10) {
        fprintf(stderr, "usage: rptest THREADS MODE SIZE_MODE CROSS_RATE LOOPS ALLOCS OPS MIN_SIZE MAX_SIZE\n");
        return 2;
    }
    nthreads = (int)arg_long(argc, argv, 1, 0);
    long mode = arg_long(argc, argv, 2, 0);
    long size_mode = arg_long(argc, argv, 3, 0);
    cross_rate = (size_t)arg_long(argc, argv, 4, 0);
    loops = (size_t)arg_long(argc, argv, 5, 0);
    allocs = (size_t)arg_long(argc, argv, 6, 0);
    ops = (size_t)arg_long(argc, argv, 7, 0);
    uint32_t min_size = (uint32_t)arg_long(argc, argv, 8, 0);
    uint32_t max_size = (uint32_t)arg_long(argc, argv, 9, 0);
    if (nthreads < 1 || mode != 0 || size_mode > 1 || cross_rate < 1 || allocs < 1 ||
        min_size < 8 || max_size < min_size) {
        fprintf(stderr, "rptest: need THREADS >= 1, MODE 0, SIZE_MODE 0|1, CROSS_RATE >= 1, "
                        "ALLOCS >= 1, 8 <= MIN_SIZE <= MAX_SIZE\n");
        return 2;
    }
    print_malloc_source();

    rng_t r = rng_seed(7);
    for (int i = 0; i < 4096; i++) {
        double u = rng_unit(&r);
        double f = size_mode == 0 ? u : 1.0 - __builtin_sqrt(1.0 - u);
        sizes[i] = min_size + (uint32_t)(f * (double)(max_size - min_size));
    }

    box = calloc((size_t)nthreads, sizeof *box);
    pthread_t *t = must_malloc((size_t)nthreads * sizeof *t);
    producing = nthreads;
    pthread_barrier_init(&start, NULL, (unsigned)nthreads + 1);
    for (int i = 0; i < nthreads; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i) != 0) {
            printf("check: FAILED pthread_create\n");
            return 1;
        }
    pthread_barrier_wait(&start);
    double t0 = now_s();
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    double t1 = now_s();

    double rate = (double)atomic_load(&memops) / (t1 - t0);
    printf("memory ops: %llu in %.3f s, %.3f Mops/s\n", (unsigned long long)atomic_load(&memops),
           t1 - t0, rate / 1e6);
    printf("relative-time: %.6f\n", 1e8 / rate);
    free(t);
    free(box);
    return finish(atomic_load(&errors), "size word, page bytes and last byte read back before free");
}
