/*
 * mstress: threads that allocate, retain, free at random and trade objects.
 *
 * Imitates mimalloc's stress test (test/test-stress.c by Daan Leijen), which
 * mimalloc-bench runs as mstress:
 *
 *     mstress THREADS SCALE ITERATIONS
 *     (bench.sh: mstress P 50 25)
 *
 * In each of ITERATIONS rounds, THREADS threads are created and joined. Thread
 * t makes 100 * SCALE * (t % 8 + 1) short-lived allocations and half as many
 * retained ones, interleaved at random. A short-lived object has 2^k words
 * (k < 5), a retained one 2^k words (k < 7); one in a hundred is 100 times
 * larger, one in a thousand 1000 times and one in ten thousand 10000 times
 * (up to 5 MB). After each allocation the thread frees a random short-lived
 * object with probability 2/3, and with probability 1/4 swaps one with a
 * random slot of a shared 1000-slot transfer array, so objects migrate
 * between threads and outlive them. A thread frees everything it still holds
 * before it exits; between rounds the main thread frees about half of the
 * transfer array, and all of it at the end.
 *
 * Check: every object is filled with a pattern derived from its length, and
 * the whole object is read back before it is freed.
 */
#include "common.h"

#include <pthread.h>
#include <stdatomic.h>

#define TRANSFER 1000
#define COOKIE 0xbf58476d1ce4e5b9ULL

static _Atomic(uint64_t *) transfer[TRANSFER];
static atomic_ullong errors, allocations;
static size_t scale;

static uint64_t *alloc_words(rng_t *r, uint32_t max_log2)
{
    size_t n = (size_t)1 << rng_below(r, max_log2);
    uint32_t tail = rng_below(r, 10000);
    if (tail == 0)
        n *= 10000; /* 0.01 %: giant */
    else if (tail < 10)
        n *= 1000; /* 0.1 %: huge */
    else if (tail < 100)
        n *= 100; /* 1 %: large */
    uint64_t *p = must_malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++)
        p[i] = (n - i) ^ COOKIE;
    return p;
}

static void free_words(uint64_t *p)
{
    if (p == NULL)
        return;
    size_t n = (size_t)(p[0] ^ COOKIE);
    uint64_t bad = 0;
    if (n == 0 || n > (size_t)64 * 10000)
        bad = 1;
    else
        for (size_t i = 1; i < n; i++)
            if (p[i] != ((n - i) ^ COOKIE))
                bad++;
    if (bad)
        atomic_fetch_add(&errors, bad);
    free(p);
}

typedef struct {
    int tid;
    int round;
} arg_t;

static void *stress(void *argp)
{
    arg_t *a = argp;
    rng_t r = rng_seed((uint64_t)a->round * 7919 + (uint64_t)a->tid);
    size_t allocs = 100 * scale * (size_t)(a->tid % 8 + 1);
    size_t retain = allocs / 2;
    uint64_t **data = must_malloc((allocs + 1) * sizeof *data);
    uint64_t **retained = must_malloc((retain + 1) * sizeof *retained);
    size_t ndata = 0, nretained = 0, count = 0;

    while (allocs > 0 || retain > 0) {
        if (retain == 0 || (allocs > 0 && rng_percent(&r, 50))) {
            allocs--;
            data[ndata++] = alloc_words(&r, 5);
        } else {
            retain--;
            retained[nretained++] = alloc_words(&r, 7);
        }
        count++;
        if (ndata > 0 && rng_percent(&r, 66)) {
            size_t i = rng_below(&r, (uint32_t)ndata);
            free_words(data[i]);
            data[i] = NULL;
        }
        if (ndata > 0 && rng_percent(&r, 25)) {
            size_t i = rng_below(&r, (uint32_t)ndata);
            size_t j = rng_below(&r, TRANSFER);
            data[i] = atomic_exchange(&transfer[j], data[i]);
        }
    }
    for (size_t i = 0; i < ndata; i++)
        free_words(data[i]);
    for (size_t i = 0; i < nretained; i++)
        free_words(retained[i]);
    free(data);
    free(retained);
    atomic_fetch_add(&allocations, count);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: mstress THREADS SCALE ITERATIONS\n");
        return 2;
    }
    int nthreads = (int)arg_long(argc, argv, 1, 0);
    scale = (size_t)arg_long(argc, argv, 2, 0);
    int rounds = (int)arg_long(argc, argv, 3, 0);
    if (nthreads < 1) {
        fprintf(stderr, "mstress: need THREADS >= 1\n");
        return 2;
    }
    print_malloc_source();

    pthread_t *t = must_malloc((size_t)nthreads * sizeof *t);
    arg_t *args = must_malloc((size_t)nthreads * sizeof *args);
    rng_t r = rng_seed(42);
    double t0 = now_s();
    for (int round = 0; round < rounds; round++) {
        for (int i = 0; i < nthreads; i++) {
            args[i].tid = i;
            args[i].round = round;
            if (pthread_create(&t[i], NULL, stress, &args[i]) != 0) {
                printf("check: FAILED pthread_create\n");
                return 1;
            }
        }
        for (int i = 0; i < nthreads; i++)
            pthread_join(t[i], NULL);
        for (int j = 0; j < TRANSFER; j++)
            if (rng_percent(&r, 50))
                free_words(atomic_exchange(&transfer[j], NULL));
    }
    for (int j = 0; j < TRANSFER; j++)
        free_words(atomic_exchange(&transfer[j], NULL));
    printf("elapsed: %.3f s, %llu allocations\n", now_s() - t0,
           (unsigned long long)atomic_load(&allocations));
    free(t);
    free(args);
    return finish(atomic_load(&errors), "every word of every object read back before free");
}
