/* Threads that exist before the program's first allocation and threads created after it.
 * Four threads are created first thing in main, before main allocates anything itself, and
 * wait at a barrier (which does not allocate); then main allocates, creates four more, and
 * all eight, with main, allocate, fill, trade and free blocks of random sizes: every block
 * is checked by whichever thread frees it, so overlapping or corrupted blocks are found.
 * Prints "threads ok". */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define EARLY 4
#define LATE 4
#define ROUNDS 50000
#define POOL 256

static pthread_barrier_t start;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char *pool[POOL];
static size_t pool_size[POOL];
static int corrupt;

static void trade(uint64_t *seed) {
    size_t n = rand_size(seed);
    unsigned char *p = malloc(n);
    if (!p) {
        corrupt++;
        return;
    }
    fill(p, n);
    int k = (int)(next_rand(seed) % POOL);
    pthread_mutex_lock(&pool_lock);
    unsigned char *old = pool[k];
    size_t old_n = pool_size[k];
    pool[k] = p;
    pool_size[k] = n;
    pthread_mutex_unlock(&pool_lock);
    if (old) {
        if (!intact(old, old_n))
            __atomic_add_fetch(&corrupt, 1, __ATOMIC_RELAXED);
        free(old);
    }
}

static void *worker(void *arg) {
    uint64_t seed = (uint64_t)(uintptr_t)arg;
    pthread_barrier_wait(&start);
    for (int i = 0; i < ROUNDS; i++)
        trade(&seed);
    return NULL;
}

int main(void) {
    pthread_t ts[EARLY + LATE];
    pthread_barrier_init(&start, NULL, EARLY + LATE + 1);
    for (int i = 0; i < EARLY; i++)
        pthread_create(&ts[i], NULL, worker, (void *)(uintptr_t)(i + 1));
    /* main's first allocation */
    char *first = malloc(64);
    strcpy(first, "main allocates after the early threads exist");
    for (int i = EARLY; i < EARLY + LATE; i++)
        pthread_create(&ts[i], NULL, worker, (void *)(uintptr_t)(i + 1));
    pthread_barrier_wait(&start);
    uint64_t seed = 99;
    for (int i = 0; i < ROUNDS; i++)
        trade(&seed);
    for (int i = 0; i < EARLY + LATE; i++)
        pthread_join(ts[i], NULL);
    for (int k = 0; k < POOL; k++) {
        if (pool[k]) {
            CHECK(intact(pool[k], pool_size[k]));
            free(pool[k]);
        }
    }
    CHECK(corrupt == 0);
    CHECK(strcmp(first, "main allocates after the early threads exist") == 0);
    free(first);
    if (failures)
        return 1;
    printf("threads ok\n");
    return 0;
}
