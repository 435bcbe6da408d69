/* dlopen of many modules with thread-local storage, from several threads.
 *
 * goheap's thread cache is a Rust thread-local, which in a shared library the compiler reads
 * through __tls_get_addr (stable Rust cannot ask for the initial-exec model). When dlopen
 * adds modules with TLS, each thread's dynamic thread vector (DTV) becomes stale; the next
 * __tls_get_addr updates it, and past its spare slots (14) glibc reallocates it, with
 * malloc, from inside __tls_get_addr: goheap's malloc then calls __tls_get_addr again while
 * the update is in progress. glibc must cope with that recursion (newer glibc has explicit
 * support for interposed mallocs that use dynamic TLS). This program makes it happen: four
 * threads that already allocated wait while main loads the modules, then each touches every
 * module's TLS and allocates; then the modules are closed and reopened three times (module
 * ids are reused, so DTV entries with memory to free are met). Usage: tls_main <dir> <n>.
 * Prints "tls ok". */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"

#define THREADS 4

static void *handles[256];
static int n;
static const char *dir;
static pthread_barrier_t barrier;

static void open_all(void) {
    for (int i = 0; i < n; i++) {
        char name[4096];
        snprintf(name, sizeof name, "%s/libtls%d.so", dir, i);
        handles[i] = dlopen(name, RTLD_NOW);
        if (!handles[i]) {
            fprintf(stderr, "dlopen: %s\n", dlerror());
            exit(1);
        }
    }
}

static int touch_all(void) {
    int sum = 0;
    for (int i = n - 1; i >= 0; i--) {
        int (*bump)(void) = (int (*)(void))dlsym(handles[i], "tls_bump");
        sum += bump();
        free(malloc(16 + i));
    }
    return sum;
}

static void *worker(void *arg) {
    free(malloc(100));
    pthread_barrier_wait(&barrier); /* main loads the modules now */
    pthread_barrier_wait(&barrier);
    int sum = touch_all();
    return (void *)(intptr_t)sum;
}

int main(int argc, char **argv) {
    dir = argv[1];
    n = atoi(argv[2]);
    pthread_t ts[THREADS];
    pthread_barrier_init(&barrier, NULL, THREADS + 1);
    for (int i = 0; i < THREADS; i++)
        pthread_create(&ts[i], NULL, worker, NULL);
    pthread_barrier_wait(&barrier);
    open_all();
    pthread_barrier_wait(&barrier);
    CHECK(touch_all() == n);
    for (int i = 0; i < THREADS; i++) {
        void *sum;
        pthread_join(ts[i], &sum);
        CHECK((intptr_t)sum == n);
    }
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < n; i++)
            dlclose(handles[i]);
        open_all();
        pthread_t t;
        pthread_create(&t, NULL, (void *(*)(void *))touch_all, NULL);
        CHECK(touch_all() == n);
        pthread_join(t, NULL);
    }
    if (failures)
        return 1;
    printf("tls ok\n");
    return 0;
}
