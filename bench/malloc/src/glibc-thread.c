/*
 * glibc-thread: threads replacing random blocks of a fixed working set for a
 * fixed time.
 *
 * Imitates glibc's benchtests/bench-malloc-thread.c as mimalloc-bench runs it
 * as glibc-thread:
 *
 *     glibc-thread THREADS [SECONDS]     (bench.sh: glibc-thread P; 2 seconds)
 *
 * Each thread keeps 1024 slots. Each iteration picks a random slot, frees its
 * block and mallocs a new one with a size drawn from an inverse-square
 * distribution over 4..32768 bytes (most blocks are tiny, a few are large),
 * writing every byte. After SECONDS the program prints the total iterations
 * and relative time = seconds per 10^8 iterations (bench.sh: 1e9 /
 * iterations, which is the same up to a constant for a fixed duration).
 *
 * Check: the first and last byte of every block are read back before it is
 * freed.
 */
#include "common.h"

#include <pthread.h>
#include <stdatomic.h>

#define SLOTS 1024
#define MIN_SIZE 4
#define MAX_SIZE 32768

static uint32_t sizes[4096];
static atomic_int stop;
static atomic_ullong iterations, errors;

static void *worker(void *arg)
{
    rng_t r = rng_seed(0x61 + (uint64_t)(intptr_t)arg);
    unsigned char *slot[SLOTS];
    uint32_t len[SLOTS];
    uint64_t n = 0, bad = 0;
    for (int i = 0; i < SLOTS; i++) {
        len[i] = sizes[rng_next(&r) & 4095];
        slot[i] = must_malloc(len[i]);
        memset(slot[i], i, len[i]);
    }
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        for (int k = 0; k < 64; k++, n++) {
            uint64_t x = rng_next(&r);
            size_t i = x & (SLOTS - 1);
            unsigned char v = (unsigned char)i;
            bad += slot[i][0] != v || slot[i][len[i] - 1] != v;
            free(slot[i]);
            len[i] = sizes[(x >> 32) & 4095];
            slot[i] = must_malloc(len[i]);
            memset(slot[i], v, len[i]);
        }
    }
    for (int i = 0; i < SLOTS; i++) {
        bad += slot[i][0] != (unsigned char)i || slot[i][len[i] - 1] != (unsigned char)i;
        free(slot[i]);
    }
    atomic_fetch_add(&iterations, n);
    atomic_fetch_add(&errors, bad);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: glibc-thread THREADS [SECONDS]\n");
        return 2;
    }
    int nthreads = (int)arg_long(argc, argv, 1, 0);
    double seconds = argc > 2 ? atof(argv[2]) : 2.0;
    if (nthreads < 1 || seconds <= 0) {
        fprintf(stderr, "glibc-thread: need THREADS >= 1, SECONDS > 0\n");
        return 2;
    }
    print_malloc_source();

    /* Inverse-square density on [MIN, MAX]: invert the CDF. */
    rng_t r = rng_seed(3);
    for (int i = 0; i < 4096; i++) {
        double u = rng_unit(&r);
        double s = 1.0 / (1.0 / MIN_SIZE - u * (1.0 / MIN_SIZE - 1.0 / MAX_SIZE));
        sizes[i] = (uint32_t)s;
    }

    pthread_t *t = must_malloc((size_t)nthreads * sizeof *t);
    double t0 = now_s();
    for (int i = 0; i < nthreads; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i) != 0) {
            printf("check: FAILED pthread_create\n");
            return 1;
        }
    sleep_s(seconds);
    atomic_store(&stop, 1);
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    double t1 = now_s();
    unsigned long long n = atomic_load(&iterations);
    printf("iterations: %llu in %.3f s (%d threads)\n", n, t1 - t0, nthreads);
    printf("relative-time: %.6f\n", (t1 - t0) / (double)n * 1e8);
    free(t);
    return finish(atomic_load(&errors), "first and last byte of every block read back");
}
