/* Mistakes goheap must catch. Each mode makes one, after printing the pointer involved on
 * stdout (flushed), so that tests/bad_input.rs can check that the process died by SIGABRT
 * with goheap's message naming exactly that pointer. Mode "huge" makes impossible requests,
 * which must fail politely (NULL, errno ENOMEM) and exit 0. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "check.h"

#pragma GCC diagnostic ignored "-Wfree-nonheap-object"
#pragma GCC diagnostic ignored "-Wuse-after-free"

static char global_buf[256];

static void say(void *p) {
    printf("%p\n", p);
    fflush(stdout);
}

static void *free_it(void *p) {
    free(p);
    return NULL;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    char local[64];
    if (!strcmp(mode, "free-global")) {
        say(global_buf + 16);
        free(global_buf + 16);
    } else if (!strcmp(mode, "free-stack")) {
        say(local);
        free(local);
    } else if (!strcmp(mode, "free-mmap")) {
        void *m = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        say(m);
        free(m);
    } else if (!strcmp(mode, "free-interior")) {
        char *p = malloc(100);
        say(p + 16);
        free(p + 16);
    } else if (!strcmp(mode, "free-interior-large")) {
        char *p = malloc(1 << 20);
        say(p + 8192);
        free(p + 8192);
    } else if (!strcmp(mode, "realloc-foreign")) {
        say(global_buf + 32);
        void *r = realloc(global_buf + 32, 100);
        printf("%p\n", r);
    } else if (!strcmp(mode, "usable-size-foreign")) {
        say(local);
        malloc_usable_size(local);
    } else if (!strcmp(mode, "double-free")) {
        void *p = malloc(32);
        say(p);
        free(p);
        free(p);
    } else if (!strcmp(mode, "double-free-remote")) {
        /* Freed twice by threads that do not own its span (two remote frees). */
        void *p = malloc(48);
        say(p);
        pthread_t t;
        pthread_create(&t, NULL, free_it, p);
        pthread_join(t, NULL);
        pthread_create(&t, NULL, free_it, p);
        pthread_join(t, NULL);
    } else if (!strcmp(mode, "double-free-remote-then-owner") ||
               !strcmp(mode, "double-free-owner-then-remote")) {
        /* Freed once by the owning thread and once by another, in either order. goheap
         * catches it when the owner's next allocation window would hand the object out
         * again, so keep allocating objects of the same class until it does. */
        void *p = malloc(48);
        say(p);
        pthread_t t;
        if (!strcmp(mode, "double-free-owner-then-remote")) free(p);
        pthread_create(&t, NULL, free_it, p);
        pthread_join(t, NULL);
        if (!strcmp(mode, "double-free-remote-then-owner")) free(p);
        for (int i = 0; i < 100000; i++) {
            if (malloc(48) == p) {
                printf("survived: %p handed out again\n", p);
                fflush(stdout);
                break;
            }
        }
    } else if (!strcmp(mode, "double-free-large")) {
        void *p = malloc(1 << 20);
        say(p);
        free(p);
        free(p);
    } else if (!strcmp(mode, "double-cfree")) {
        void (*my_cfree)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "cfree");
        void *p = malloc(64);
        say(p);
        my_cfree(p);
        my_cfree(p);
    } else if (!strcmp(mode, "huge")) {
        volatile size_t sizes[] = {SIZE_MAX, (size_t)PTRDIFF_MAX + 1, (size_t)1 << 60,
                                   (size_t)1 << 48};
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            errno = 0;
            CHECK(malloc(sizes[i]) == NULL && errno == ENOMEM);
            errno = 0;
            CHECK(calloc(sizes[i], 1) == NULL && errno == ENOMEM);
            errno = 0;
            CHECK(memalign(1 << 16, sizes[i]) == NULL && errno == ENOMEM);
        }
        /* The heap still works afterwards. */
        void *p = malloc(1 << 20);
        CHECK(p != NULL);
        free(p);
        if (failures)
            return 1;
        printf("huge ok\n");
        return 0;
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    printf("survived\n");
    return 0;
}
