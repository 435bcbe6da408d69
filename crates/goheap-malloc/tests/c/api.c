/* The malloc API's semantics, edge cases included, as glibc defines them.
 *
 * Run twice by tests/api.rs: without the library (argument "glibc"), which checks that these
 * expectations really are glibc's, and preloaded (argument "goheap"), which checks goheap
 * against them, plus a few facts only goheap's size classes give (usable sizes). Prints
 * "api ok" and exits 0 when every CHECK held. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <gnu/libc-version.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* The failing realloc calls below leave their block valid, which is the point. */
#pragma GCC diagnostic ignored "-Wuse-after-free"

/* Sizes passed through a volatile so that the compiler cannot reason about them. */
static volatile size_t huge_sizes[] = {SIZE_MAX, SIZE_MAX - 4096, (size_t)PTRDIFF_MAX,
                                       (size_t)PTRDIFF_MAX + 1, (size_t)1 << 62,
                                       ((size_t)1 << 48) + 1};
#define NHUGE (sizeof huge_sizes / sizeof huge_sizes[0])

static int all_zero(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static void check_malloc(void) {
    for (size_t n = 0; n <= 70000; n += n < 1100 ? 1 : n < 9000 ? 7 : 331) {
        unsigned char *p = malloc(n);
        CHECK(p != NULL);
        /* glibc: 16-aligned always; goheap: 16-aligned above 8 bytes (C needs no more). */
        CHECK(ALIGNED(p, n > 8 ? 16 : 8));
        CHECK(malloc_usable_size(p) >= n);
        memset(p, 0xab, malloc_usable_size(p));
        free(p);
    }
    void *a = malloc(0), *b = malloc(0);
    CHECK(a && b && a != b);
    free(a);
    free(b);
    free(NULL);
    CHECK(malloc_usable_size(NULL) == 0);
    for (size_t i = 0; i < NHUGE; i++) {
        errno = 0;
        CHECK(malloc(huge_sizes[i]) == NULL);
        CHECK(errno == ENOMEM);
    }
}

static void check_calloc(void) {
    /* Dirty memory first, so that calloc must really clear what it reuses. */
    for (size_t n = 1; n <= (1 << 20); n *= 3) {
        unsigned char *d = malloc(n);
        memset(d, 0xff, n);
        free(d);
        unsigned char *p = calloc(1, n);
        CHECK(p && all_zero(p, n));
        unsigned char *q = calloc(n, 1);
        CHECK(q && all_zero(q, n));
        free(p);
        free(q);
    }
    void *z = calloc(0, 16);
    CHECK(z != NULL);
    free(z);
    volatile size_t half = SIZE_MAX / 2 + 1;
    errno = 0;
    CHECK(calloc(half, 2) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(calloc(3, half) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(calloc(1, huge_sizes[0]) == NULL && errno == ENOMEM);
}

static void check_realloc(void) {
    unsigned char *p = realloc(NULL, 10);
    CHECK(p != NULL);
    for (int i = 0; i < 10; i++)
        p[i] = (unsigned char)i;
    /* Grow across classes, into large objects and back, contents kept. */
    size_t sizes[] = {16, 24, 100, 5000, 40000, 1 << 20, 3 << 20, 70000, 33, 11, 10};
    size_t have = 10;
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        unsigned char *q = realloc(p, n);
        CHECK(q != NULL);
        CHECK(ALIGNED(q, 16));
        for (size_t i = 0; i < (have < n ? have : n); i++)
            if (q[i] != (unsigned char)i) {
                CHECK(!"realloc lost contents");
                break;
            }
        for (size_t i = have; i < n; i++)
            q[i] = (unsigned char)i;
        p = q;
        have = n;
    }
    /* Impossible sizes: null, ENOMEM, the block untouched and still ours. */
    for (size_t i = 0; i < NHUGE; i++) {
        errno = 0;
        CHECK(realloc(p, huge_sizes[i]) == NULL);
        CHECK(errno == ENOMEM);
    }
    for (size_t i = 0; i < have; i++)
        CHECK(p[i] == (unsigned char)i);
    /* realloc(p, 0) frees p and returns NULL (glibc). */
    CHECK(realloc(p, 0) == NULL);
    /* reallocarray */
    int *a = reallocarray(NULL, 100, sizeof(int));
    CHECK(a != NULL);
    for (int i = 0; i < 100; i++)
        a[i] = i;
    volatile size_t big = SIZE_MAX / 4;
    errno = 0;
    CHECK(reallocarray(a, big, 8) == NULL && errno == ENOMEM);
    CHECK(a[99] == 99);
    a = reallocarray(a, 1000, sizeof(int));
    CHECK(a != NULL && a[0] == 0 && a[99] == 99);
    free(a);
}

static void check_memalign_family(int goheap) {
    for (size_t align = sizeof(void *); align <= (1 << 22); align *= 2) {
        size_t sizes[] = {0, 1, 8, 24, align - 1, align, align + 1, 3 * align, 100000};
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            size_t n = sizes[k];
            void *p = (void *)0x1;
            CHECK(posix_memalign(&p, align, n) == 0);
            CHECK(p != NULL && ALIGNED(p, align) && malloc_usable_size(p) >= n);
            memset(p, 1, n);
            free(p);
            p = memalign(align, n);
            CHECK(p != NULL && ALIGNED(p, align) && malloc_usable_size(p) >= n);
            free(p);
            p = aligned_alloc(align, n);
            CHECK(p != NULL && ALIGNED(p, align) && malloc_usable_size(p) >= n);
            free(p);
        }
    }
    /* posix_memalign: EINVAL unless a power-of-two multiple of sizeof(void *); ENOMEM;
     * *memptr untouched on failure. */
    size_t bad[] = {0, 1, 2, 4, 12, 24, 40, 48, 4097, SIZE_MAX};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        void *p = (void *)0x1234;
        CHECK(posix_memalign(&p, bad[k], 16) == EINVAL);
        CHECK(p == (void *)0x1234);
    }
    for (size_t i = 0; i < NHUGE; i++) {
        void *p = (void *)0x1234;
        CHECK(posix_memalign(&p, 64, huge_sizes[i]) == ENOMEM);
        CHECK(p == (void *)0x1234);
    }
    /* memalign: small alignments are malloc's; others round up to a power of two; absurd
     * ones fail with EINVAL. */
    void *p = memalign(0, 10);
    CHECK(p && ALIGNED(p, 16));
    free(p);
    p = memalign(3, 100);
    CHECK(p && ALIGNED(p, 16));
    free(p);
    p = memalign(24, 100);
    CHECK(p && ALIGNED(p, 32));
    free(p);
    p = memalign(100, 1000);
    CHECK(p && ALIGNED(p, 128));
    free(p);
    p = memalign(5000, 10);
    CHECK(p && ALIGNED(p, 8192));
    free(p);
    errno = 0;
    CHECK(memalign(SIZE_MAX / 2 + 2, 10) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(memalign(4096, huge_sizes[0]) == NULL && errno == ENOMEM);
    /* aligned_alloc with an alignment that is not a power of two: NULL and EINVAL since
     * glibc 2.38 (and in goheap); older glibc treated it like memalign. */
    int major = 0, minor = 0;
    sscanf(gnu_get_libc_version(), "%d.%d", &major, &minor);
    if (goheap || major > 2 || (major == 2 && minor >= 38)) {
        errno = 0;
        CHECK(aligned_alloc(24, 48) == NULL && errno == EINVAL);
        errno = 0;
        CHECK(aligned_alloc(0, 48) == NULL && errno == EINVAL);
    }
    errno = 0;
    CHECK(aligned_alloc(64, huge_sizes[0]) == NULL && errno == ENOMEM);
    /* valloc / pvalloc: page-aligned; pvalloc rounds the size up to pages, 0 to one page. */
    size_t vs[] = {0, 1, 4095, 4096, 4097, 100000};
    for (size_t k = 0; k < sizeof vs / sizeof vs[0]; k++) {
        size_t n = vs[k];
        p = valloc(n);
        CHECK(p && ALIGNED(p, 4096) && malloc_usable_size(p) >= n);
        free(p);
        p = pvalloc(n);
        CHECK(p && ALIGNED(p, 4096) && malloc_usable_size(p) >= n);
        /* The size rounded up to whole pages, 0 to one page: what glibc documents and
         * goheap does. glibc 2.36 computes `(n + 4095) & -(4095)`, which is not that (it
         * gives 1 byte for 0), so the rounding is checked in goheap only. */
        size_t rounded = n == 0 ? 4096 : (n + 4095) / 4096 * 4096;
        if (goheap) {
            CHECK(p && malloc_usable_size(p) >= rounded);
            if (p && malloc_usable_size(p) >= rounded)
                memset(p, 2, rounded);
        }
        free(p);
    }
    errno = 0;
    CHECK(valloc(huge_sizes[0]) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(pvalloc(SIZE_MAX - 100) == NULL && errno == ENOMEM);
}

/* Facts of goheap's size classes: these fail under glibc, so only with "goheap". */
static void check_goheap_classes(void) {
    void *p = malloc(1);
    CHECK(malloc_usable_size(p) == 8);
    free(p);
    /* 17..24 bytes come from the 32-byte class (16-byte alignment, as glibc gives). */
    for (size_t n = 17; n <= 24; n++) {
        p = malloc(n);
        CHECK(malloc_usable_size(p) == 32);
        free(p);
    }
    p = malloc(100);
    CHECK(malloc_usable_size(p) == 112);
    /* realloc within the class stays in place. */
    CHECK(realloc(p, 110) == p);
    free(p);
    /* cfree: glibc keeps it only as a compatibility symbol; goheap exports it. */
    void (*my_cfree)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "cfree");
    CHECK(my_cfree != NULL);
    if (my_cfree)
        my_cfree(malloc(40));
}

int main(int argc, char **argv) {
    int goheap = argc > 1 && strcmp(argv[1], "goheap") == 0;
    check_malloc();
    check_calloc();
    check_realloc();
    check_memalign_family(goheap);
    if (goheap)
        check_goheap_classes();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("api ok\n");
    return 0;
}
