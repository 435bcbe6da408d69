/* 1000 short-lived threads, four at a time. Each allocates blocks over the whole range of
 * small size classes plus a large one, frees most of them, and hands every tenth back to
 * main, which checks and frees it after the thread has exited (frees into the spans of a
 * retired cache). A thread's cache goes back to the heap when it exits, so the heap in use
 * at the end is small: run with GOHEAP_STATS=1, tests/threads.rs checks heap_inuse in the
 * report; were caches kept by dead threads, 1000 of them would hold hundreds of MiB.
 * Prints "short threads ok". */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define THREADS 1000
#define AT_ONCE 4
#define BLOCKS 300

struct kept {
    unsigned char *p[BLOCKS / 10];
    size_t n[BLOCKS / 10];
};

static void *churn(void *arg) {
    uint64_t seed = (uint64_t)(uintptr_t)arg;
    struct kept *k = malloc(sizeof *k);
    unsigned char *tmp[BLOCKS];
    size_t tmp_n[BLOCKS];
    int nk = 0;
    for (int i = 0; i < BLOCKS; i++) {
        size_t n = 1 + (size_t)((i * 131 + next_rand(&seed) % 64) % 4000);
        unsigned char *p = malloc(n);
        fill(p, n);
        if (i % 10 == 0) {
            k->p[nk] = p;
            k->n[nk++] = n;
        }
        tmp[i] = p;
        tmp_n[i] = n;
    }
    unsigned char *large = malloc(100000);
    memset(large, 3, 100000);
    for (int i = 0; i < BLOCKS; i++) {
        if (i % 10 != 0) {
            if (!intact(tmp[i], tmp_n[i]))
                abort();
            free(tmp[i]);
        }
    }
    free(large);
    return k;
}

int main(void) {
    int done = 0;
    while (done < THREADS) {
        pthread_t ts[AT_ONCE];
        for (int i = 0; i < AT_ONCE; i++)
            CHECK(pthread_create(&ts[i], NULL, churn, (void *)(uintptr_t)(done + i + 1)) == 0);
        for (int i = 0; i < AT_ONCE; i++) {
            struct kept *k;
            pthread_join(ts[i], (void **)&k);
            for (int j = 0; j < BLOCKS / 10; j++) {
                CHECK(intact(k->p[j], k->n[j]));
                free(k->p[j]);
            }
            free(k);
        }
        done += AT_ONCE;
    }
    if (failures)
        return 1;
    printf("short threads ok\n");
    return 0;
}
