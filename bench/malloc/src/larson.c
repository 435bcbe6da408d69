/*
 * larson: a server simulation in which blocks "bleed" from thread to thread.
 *
 * Imitates Larson & Krishnan's benchmark ("Memory allocation for long-running
 * server applications", ISMM '98) as mimalloc-bench runs it:
 *
 *     larson SECONDS MIN_SIZE MAX_SIZE CHUNKS ROUNDS SEED THREADS
 *     (bench.sh: larson 5 8 1000 5000 100 4141 P)
 *
 * There are THREADS lanes, each an array of CHUNKS blocks of random size in
 * [MIN_SIZE, MAX_SIZE), all first malloc'd by the main thread. A worker thread
 * on a lane repeatedly picks a random slot, frees the block there, mallocs a
 * new one and writes its first two bytes. After ROUNDS * CHUNKS replacements
 * it starts a new thread on the same lane and exits, so blocks malloc'd by one
 * thread are freed by another, and threads keep being born and dying. After
 * SECONDS the main thread stops the lanes and prints the throughput
 * (replacements per second) and, like bench.sh, relative time =
 * 1e9 / throughput (seconds per 10^9 replacements).
 *
 * Check: the two bytes of every block are read back before it is freed.
 */
#include "common.h"

#include <pthread.h>
#include <stdatomic.h>

typedef struct {
    char **block;
    uint32_t *size;
    size_t chunks, rounds;
    uint32_t min_size, max_size;
    rng_t rng;
    uint64_t ops, errors, threads;
    atomic_int done;
} lane_t;

static atomic_int stop;

static inline void stamp(char *p, uint32_t size)
{
    p[0] = (char)size;
    p[1] = (char)(size >> 8) ^ 0x5a;
}

static inline int stamp_ok(const char *p, uint32_t size)
{
    return p[0] == (char)size && p[1] == ((char)(size >> 8) ^ 0x5a);
}

static void *worker(void *arg)
{
    lane_t *l = arg;
    uint32_t range = l->max_size - l->min_size;
    size_t n = l->rounds * l->chunks;
    l->threads++;
    for (size_t i = 0; i < n; i++) {
        uint32_t v = rng_below(&l->rng, (uint32_t)l->chunks);
        if (!stamp_ok(l->block[v], l->size[v]))
            l->errors++;
        free(l->block[v]);
        uint32_t size = l->min_size + rng_below(&l->rng, range);
        l->block[v] = must_malloc(size);
        l->size[v] = size;
        stamp(l->block[v], size);
        l->ops++;
        if (atomic_load_explicit(&stop, memory_order_relaxed))
            break;
    }
    /* Hand the lane to a fresh thread, or report it finished. */
    if (!atomic_load(&stop)) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &attr, worker, l) == 0) {
            pthread_attr_destroy(&attr);
            return NULL;
        }
        pthread_attr_destroy(&attr);
        l->errors++; /* could not start a successor */
    }
    atomic_store(&l->done, 1);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: larson SECONDS MIN_SIZE MAX_SIZE CHUNKS ROUNDS SEED THREADS\n");
        return 2;
    }
    double seconds = atof(argv[1]);
    uint32_t min_size = (uint32_t)arg_long(argc, argv, 2, 0);
    uint32_t max_size = (uint32_t)arg_long(argc, argv, 3, 0);
    size_t chunks = (size_t)arg_long(argc, argv, 4, 0);
    size_t rounds = (size_t)arg_long(argc, argv, 5, 0);
    uint64_t seed = (uint64_t)arg_long(argc, argv, 6, 0);
    int nthreads = (int)arg_long(argc, argv, 7, 0);
    if (min_size < 2 || max_size <= min_size || chunks == 0 || rounds == 0 || nthreads < 1) {
        fprintf(stderr, "larson: need MIN_SIZE >= 2, MAX_SIZE > MIN_SIZE, CHUNKS, ROUNDS, THREADS >= 1\n");
        return 2;
    }
    print_malloc_source();

    /* Warm-up: the main thread mallocs every lane's blocks. */
    lane_t *lanes = calloc((size_t)nthreads, sizeof *lanes);
    for (int i = 0; i < nthreads; i++) {
        lane_t *l = &lanes[i];
        l->block = must_malloc(chunks * sizeof *l->block);
        l->size = must_malloc(chunks * sizeof *l->size);
        l->chunks = chunks;
        l->rounds = rounds;
        l->min_size = min_size;
        l->max_size = max_size;
        l->rng = rng_seed(seed * 1000 + (uint64_t)i);
        for (size_t j = 0; j < chunks; j++) {
            uint32_t size = min_size + rng_below(&l->rng, max_size - min_size);
            l->block[j] = must_malloc(size);
            l->size[j] = size;
            stamp(l->block[j], size);
        }
    }

    double t0 = now_s();
    for (int i = 0; i < nthreads; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, worker, &lanes[i]) != 0) {
            printf("check: FAILED pthread_create\n");
            return 1;
        }
        pthread_detach(t);
    }
    sleep_s(seconds);
    atomic_store(&stop, 1);
    double t1 = now_s();
    for (int i = 0; i < nthreads; i++)
        while (!atomic_load(&lanes[i].done))
            sleep_s(0.001);

    uint64_t ops = 0, errors = 0, threads = 0;
    for (int i = 0; i < nthreads; i++) {
        lane_t *l = &lanes[i];
        for (size_t j = 0; j < chunks; j++) {
            if (!stamp_ok(l->block[j], l->size[j]))
                errors++;
            free(l->block[j]);
        }
        free(l->block);
        free(l->size);
        ops += l->ops;
        errors += l->errors;
        threads += l->threads;
    }
    free(lanes);

    double throughput = (double)ops / (t1 - t0);
    printf("Throughput = %.0f operations per second (%llu threads created)\n", throughput,
           (unsigned long long)threads);
    printf("relative-time: %.6f\n", 1e9 / throughput);
    return finish(errors, "block stamps read back before free");
}
