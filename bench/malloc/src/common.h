/*
 * common.h: helpers shared by the workload programs in this directory.
 *
 * A monotonic clock, a small fast PRNG (splitmix64), and the lines that
 * run.py reads from every program's stdout:
 *
 *   malloc-from: PATH      the shared object that provides malloc (dladdr), so
 *                          the driver can see that LD_PRELOAD really took effect
 *   relative-time: X       (throughput workloads only) time derived from the
 *                          program's own throughput; larger is slower
 *   check: ok ...          the program's own correctness check passed
 *   check: FAILED ...      it did not (and the exit status is 1)
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void sleep_s(double s)
{
    struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* splitmix64: one add and two multiplies per number, good enough statistics. */
typedef struct {
    uint64_t s;
} rng_t;

static inline rng_t rng_seed(uint64_t seed)
{
    rng_t r = { seed * 0x2545f4914f6cdd1dULL + 0x9e3779b97f4a7c15ULL };
    return r;
}

static inline uint64_t rng_next(rng_t *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) without a division. */
static inline uint32_t rng_below(rng_t *r, uint32_t n)
{
    return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* Uniform in [0, 1). */
static inline double rng_unit(rng_t *r)
{
    return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

static inline int rng_percent(rng_t *r, uint32_t percent)
{
    return rng_below(r, 1000) < percent * 10;
}

/* Report which object defines the malloc this program calls. */
static inline void print_malloc_source(void)
{
    void *(*volatile m)(size_t) = malloc;
    Dl_info info;
    if (dladdr((void *)m, &info) && info.dli_fname)
        printf("malloc-from: %s\n", info.dli_fname);
    else
        printf("malloc-from: unknown\n");
    fflush(stdout);
}

/* malloc that ends the program with a failed check on NULL. */
static inline void *must_malloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL) {
        printf("check: FAILED malloc(%zu) returned NULL\n", n);
        exit(1);
    }
    return p;
}

static inline int finish(unsigned long long errors, const char *what)
{
    if (errors) {
        printf("check: FAILED %llu errors (%s)\n", errors, what);
        return 1;
    }
    printf("check: ok (%s)\n", what);
    return 0;
}

static inline long arg_long(int argc, char **argv, int i, long dflt)
{
    if (i >= argc)
        return dflt;
    char *end;
    long v = strtol(argv[i], &end, 10);
    if (*end != '\0' || v < 0) {
        fprintf(stderr, "bad argument %d: '%s'\n", i, argv[i]);
        exit(2);
    }
    return v;
}

#endif
