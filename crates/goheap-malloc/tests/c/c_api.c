/* Calls every function of goheap.h and checks what it answers (tests/c_api.rs).
 *
 * Built two ways: linked with -lgoheap_malloc (flags from pkg-config), and, with
 * -DGOHEAP_WEAK, linked against nothing of goheap's and run under LD_PRELOAD: the API is
 * then declared weak and resolved by the dynamic linker in the preloaded library. Without
 * the library the weak build says "goheap not loaded" and exits 3.
 *
 * The checks: the version numbers and string agree with the header's; the statistics of
 * 20,000 live 1000-byte blocks (class 1024) show the mallocs, the objects and the bytes,
 * and freeing them takes them away; goheap_stats honours a smaller, a larger and a too
 * small struct and a NULL; after the frees goheap_release_memory returns memory to the OS:
 * it reports bytes, heap_released and released_total grow, and the resident set shrinks. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include <goheap.h>

#ifdef GOHEAP_WEAK
#pragma weak goheap_version
#pragma weak goheap_version_string
#pragma weak goheap_stats
#pragma weak goheap_release_memory
#endif

#define N 20000
#define SIZE 1000

/* Resident bytes, from /proc/self/statm. */
static long rss_bytes(void) {
    long pages = -1, resident = -1;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = -1;
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

static goheap_stats_t read_stats(void) {
    goheap_stats_t s;
    memset(&s, 0xAB, sizeof s);
    s.size = sizeof s;
    CHECK(goheap_stats(&s) == 0);
    CHECK(s.size == sizeof s);
    CHECK(s.heap_inuse + s.heap_idle == s.heap_sys);
    CHECK(s.heap_released <= s.heap_idle);
    CHECK(s.heap_alloc <= s.heap_inuse);
    CHECK(s.mallocs - s.frees == s.heap_objects);
    CHECK(s.peak_inuse >= s.heap_inuse);
    return s;
}

int main(void) {
#ifdef GOHEAP_WEAK
    if (!goheap_version || !goheap_version_string || !goheap_stats || !goheap_release_memory) {
        printf("goheap not loaded\n");
        return 3;
    }
#endif
    /* Versions: the library is the one this header describes. */
    CHECK(goheap_version() == GOHEAP_VERSION_NUMBER);
    CHECK(strcmp(goheap_version_string(), GOHEAP_VERSION_STRING) == 0);
    CHECK(goheap_version_string() == goheap_version_string());
    char expect[64];
    snprintf(expect, sizeof expect, "%d.%d.%d", GOHEAP_VERSION_MAJOR, GOHEAP_VERSION_MINOR,
             GOHEAP_VERSION_PATCH);
    CHECK(strcmp(goheap_version_string(), expect) == 0);

    /* Allocations show in the statistics: in-use bytes rise, and fall after the frees. */
    goheap_stats_t before = read_stats();
    static void *blocks[N];
    for (int i = 0; i < N; i++) {
        blocks[i] = malloc(SIZE);
        CHECK(blocks[i] != NULL);
        memset(blocks[i], i, SIZE);
    }
    goheap_stats_t live = read_stats();
    CHECK(live.mallocs >= before.mallocs + N);
    CHECK(live.heap_objects >= before.heap_objects + N);
    CHECK(live.heap_alloc >= before.heap_alloc + (uint64_t)N * 1024);
    CHECK(live.heap_inuse >= before.heap_inuse + (uint64_t)N * 1024);
    CHECK(live.total_alloc >= before.total_alloc + (uint64_t)N * 1024);
    CHECK(live.peak_inuse >= live.heap_inuse);
    for (int i = 0; i < N; i++)
        free(blocks[i]);
    goheap_stats_t freed = read_stats();
    CHECK(freed.frees >= live.frees + N);
    CHECK(freed.heap_alloc + (uint64_t)N * 1024 <= live.heap_alloc);
    CHECK(freed.heap_objects + N <= live.heap_objects);

    /* The size field: a struct of the header and a byte more; only the size field and one
     * figure; too small; NULL. */
    struct {
        goheap_stats_t s;
        uint64_t extra;
    } bigger;
    memset(&bigger, 0xAB, sizeof bigger);
    bigger.s.size = sizeof bigger;
    CHECK(goheap_stats(&bigger.s) == 0);
    CHECK(bigger.s.size == sizeof(goheap_stats_t));
    CHECK(bigger.extra == 0xABABABABABABABABull);
    CHECK(bigger.s.heap_sys != 0xABABABABABABABABull && bigger.s.peak_inuse != 0xABABABABABABABABull);

    goheap_stats_t small;
    memset(&small, 0xAB, sizeof small);
    small.size = sizeof(size_t) + sizeof(uint64_t) + 5; /* one whole figure and part of one */
    CHECK(goheap_stats(&small) == 0);
    CHECK(small.size == sizeof(size_t) + sizeof(uint64_t));
    CHECK(small.heap_sys >= freed.heap_inuse && small.heap_sys != 0xABABABABABABABABull);
    CHECK(small.heap_inuse == 0xABABABABABABABABull);

    goheap_stats_t tiny;
    memset(&tiny, 0xAB, sizeof tiny);
    tiny.size = sizeof(size_t);
    CHECK(goheap_stats(&tiny) == EINVAL);
    CHECK(tiny.size == sizeof(size_t) && tiny.heap_sys == 0xABABABABABABABABull);
    CHECK(goheap_stats(NULL) == EINVAL);

    /* Release: the 20 MB of freed blocks go back to the OS and the resident set shrinks. */
    long rss_before = rss_bytes();
    size_t released = goheap_release_memory();
    long rss_after = rss_bytes();
    goheap_stats_t after = read_stats();
    CHECK(released >= 4u << 20);
    CHECK(after.heap_released >= freed.heap_released + released - (1u << 20));
    CHECK(after.released_total >= freed.released_total + released);
    CHECK(rss_before > 0 && rss_after > 0);
    CHECK(rss_after <= rss_before - (long)(released / 2));
    /* Nothing is left to give back. */
    size_t again = goheap_release_memory();
    CHECK(again < (1u << 20));
    CHECK(rss_bytes() <= rss_after + (64 << 10));

    fprintf(stderr, "released %zu bytes, RSS %ld -> %ld KiB; again %zu bytes\n", released,
            rss_before >> 10, rss_after >> 10, again);
    if (failures) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    printf("c_api ok\n");
    return 0;
}
