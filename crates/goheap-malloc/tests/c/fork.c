/* fork() while other threads allocate. Three threads allocate, fill, check and free blocks
 * of random sizes without pause, passing some to each other through shared slots (remote
 * frees); meanwhile the main thread forks again and again. Each child must be able to use
 * the heap: it frees blocks it inherited (memory owned by threads that do not exist in the
 * child), allocates and frees, starts a thread that does the same, and exits 0 within its
 * alarm. A lock held by a vanished thread at the moment of the fork would hang the child
 * (the alarm then kills it); a heap caught half-updated would crash it or fail a check.
 * Usage: fork <number of forks>. Prints "forks ok". */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

#define THREADS 3
#define SLOTS 64

static _Atomic(void *) shared[SLOTS];
static atomic_int stop;

static void *hammer(void *arg) {
    uint64_t seed = (uint64_t)(uintptr_t)arg * 7919;
    void *mine[32] = {0};
    size_t sizes[32] = {0};
    while (!atomic_load(&stop)) {
        int k = (int)(next_rand(&seed) % 32);
        if (mine[k]) {
            if (!intact(mine[k], sizes[k])) {
                fprintf(stderr, "hammer: block corrupted\n");
                abort();
            }
            free(mine[k]);
        }
        sizes[k] = rand_size(&seed);
        mine[k] = malloc(sizes[k]);
        if (!mine[k])
            abort();
        fill(mine[k], sizes[k]);
        /* Hand a fresh block to whoever comes next; free what was there (remote free). */
        void *give = malloc(1 + next_rand(&seed) % 300);
        void *old = atomic_exchange(&shared[next_rand(&seed) % SLOTS], give);
        free(old);
    }
    for (int k = 0; k < 32; k++)
        free(mine[k]);
    return NULL;
}

static void *child_thread(void *arg) {
    uint64_t seed = (uint64_t)(uintptr_t)arg;
    for (int i = 0; i < 2000; i++) {
        size_t n = rand_size(&seed);
        unsigned char *p = malloc(n);
        fill(p, n);
        if (!intact(p, n))
            abort();
        free(p);
    }
    return NULL;
}

static int child(int round) {
    alarm(10);
    /* Blocks allocated by the parent's threads: free a few (their owners are gone). */
    for (int i = 0; i < SLOTS; i += 4)
        free(atomic_exchange(&shared[i], NULL));
    uint64_t seed = (uint64_t)round;
    void *keep[100];
    for (int i = 0; i < 100; i++) {
        size_t n = rand_size(&seed);
        keep[i] = malloc(n);
        if (!keep[i])
            return 3;
        memset(keep[i], i, n);
    }
    pthread_t t;
    if (pthread_create(&t, NULL, child_thread, (void *)(uintptr_t)(round + 1)) != 0)
        return 4;
    pthread_join(t, NULL);
    for (int i = 0; i < 100; i++)
        free(keep[i]);
    void *big = malloc(3 << 20);
    memset(big, 1, 3 << 20);
    free(big);
    return 0;
}

int main(int argc, char **argv) {
    int forks = argc > 1 ? atoi(argv[1]) : 100;
    pthread_t ts[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&ts[i], NULL, hammer, (void *)(uintptr_t)(i + 1));
    fflush(stdout);
    int bad = 0;
    for (int r = 0; r < forks; r++) {
        void *between = malloc(100 + r);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0)
            _exit(child(r));
        int status;
        if (waitpid(pid, &status, 0) != pid) {
            perror("waitpid");
            return 1;
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "fork %d: child %s %d\n", r,
                    WIFSIGNALED(status) ? "killed by signal" : "exited with",
                    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
            bad++;
        }
        free(between);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < THREADS; i++)
        pthread_join(ts[i], NULL);
    for (int i = 0; i < SLOTS; i++)
        free(atomic_exchange(&shared[i], NULL));
    if (bad) {
        fprintf(stderr, "%d of %d children failed\n", bad, forks);
        return 1;
    }
    printf("forks ok\n");
    return 0;
}
