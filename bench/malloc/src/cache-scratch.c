/*
 * cache-scratch: passive false sharing.
 *
 * Imitates cache-scratch from the Hoard benchmarks (Berger, McKinley, Blumofe
 * & Wilson, "Hoard: a scalable memory allocator for multithreaded
 * applications", ASPLOS 2000) as mimalloc-bench runs it:
 *
 *     cache-scratch THREADS ITERATIONS OBJSIZE REPETITIONS CONCURRENCY
 *     (bench.sh: cache-scratch 1 1000 1 2000000 P  and  cache-scratch P 1000 1 2000000 P)
 *
 * The main thread mallocs one OBJSIZE-byte object per thread, back to back,
 * so that they probably share a cache line, writes them, and hands one to
 * each thread. Each thread frees the object it was given, then ITERATIONS
 * times mallocs an OBJSIZE-byte object, writes and reads back every byte of it
 * REPETITIONS / THREADS times, and frees it. (As in Hoard's version the
 * repetitions are divided among the threads, so the total work does not depend
 * on THREADS.) An allocator that hands the freed foreign object straight back
 * to the thread that freed it makes the threads write to one cache line, and
 * the THREADS > 1 run becomes far slower than it should be. CONCURRENCY is
 * accepted for compatibility and ignored.
 *
 * Check: every byte written is read back; the given objects are read back
 * before they are freed.
 */
#include "common.h"

#include <pthread.h>

typedef struct {
    unsigned char *given;
    size_t objsize, iterations, repetitions;
    uint64_t errors;
} work_t;

static void *worker(void *arg)
{
    work_t *w = arg;
    uint64_t errors = 0;
    for (size_t k = 0; k < w->objsize; k++)
        if (w->given[k] != (unsigned char)(0xa5 ^ k))
            errors++;
    free(w->given);
    for (size_t i = 0; i < w->iterations; i++) {
        volatile unsigned char *a = must_malloc(w->objsize);
        for (size_t r = 0; r < w->repetitions; r++) {
            for (size_t k = 0; k < w->objsize; k++) {
                a[k] = (unsigned char)(r + k);
                if (a[k] != (unsigned char)(r + k))
                    errors++;
            }
        }
        free((void *)a);
    }
    w->errors = errors;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: cache-scratch THREADS ITERATIONS OBJSIZE REPETITIONS CONCURRENCY\n");
        return 2;
    }
    int nthreads = (int)arg_long(argc, argv, 1, 0);
    size_t iterations = (size_t)arg_long(argc, argv, 2, 0);
    size_t objsize = (size_t)arg_long(argc, argv, 3, 0);
    size_t repetitions = (size_t)arg_long(argc, argv, 4, 0);
    if (nthreads < 1 || objsize < 1) {
        fprintf(stderr, "cache-scratch: need THREADS >= 1, OBJSIZE >= 1\n");
        return 2;
    }
    print_malloc_source();

    pthread_t *t = must_malloc((size_t)nthreads * sizeof *t);
    work_t *w = must_malloc((size_t)nthreads * sizeof *w);
    for (int i = 0; i < nthreads; i++) {
        w[i].given = must_malloc(objsize);
        for (size_t k = 0; k < objsize; k++)
            w[i].given[k] = (unsigned char)(0xa5 ^ k);
        w[i].objsize = objsize;
        w[i].iterations = iterations;
        w[i].repetitions = repetitions / (size_t)nthreads;
        w[i].errors = 0;
    }
    double t0 = now_s();
    for (int i = 0; i < nthreads; i++)
        if (pthread_create(&t[i], NULL, worker, &w[i]) != 0) {
            printf("check: FAILED pthread_create\n");
            return 1;
        }
    uint64_t errors = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(t[i], NULL);
        errors += w[i].errors;
    }
    printf("elapsed: %.3f s\n", now_s() - t0);
    free(t);
    free(w);
    return finish(errors, "every written byte read back");
}
