/* The heap profiler under LD_PRELOAD while other threads dlopen and dlclose libraries:
 * every allocation is sampled (GOHEAP_PROFILE_RATE=1), so every malloc walks its stack
 * with the unwinder, which looks up each frame's object while the loader adds and removes
 * objects. Then the process forks and both sides allocate: GOHEAP_PROFILE=...%p gives each
 * its own profile at exit. Argv: the libraries to load. Must finish (no deadlock). */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define ROUNDS 300
static char **libs;
static int nlibs;

static void *loader(void *arg) {
    (void)arg;
    for (int r = 0; r < ROUNDS; r++) {
        void *h = dlopen(libs[r % nlibs], RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            fprintf(stderr, "dlopen: %s\n", dlerror());
            exit(2);
        }
        dlclose(h);
    }
    return 0;
}

__attribute__((noinline)) static void allocate_while_loading(void) {
    for (int r = 0; r < ROUNDS * 20; r++) {
        void *p[8];
        for (int i = 0; i < 8; i++) {
            p[i] = malloc(16 + 64 * i);
            memset(p[i], i, 16);
        }
        for (int i = 0; i < 8; i++)
            free(p[i]);
    }
}

static void *allocator(void *arg) {
    (void)arg;
    allocate_while_loading();
    return 0;
}

__attribute__((noinline)) static void child_work(void) {
    for (int i = 0; i < 1000; i++)
        free(malloc(100));
}

int main(int argc, char **argv) {
    libs = argv + 1;
    nlibs = argc - 1;
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], 0, i % 2 ? loader : allocator, 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], 0);
    pid_t pid = fork();
    if (pid == 0) {
        child_work();
        exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    printf("child %d exited %d\n", (int)pid, WEXITSTATUS(status));
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
