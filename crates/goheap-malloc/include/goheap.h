/* goheap.h: the C API of libgoheap_malloc, goheap (Go's memory allocator rebuilt in Rust)
 * as a shared library that replaces malloc.
 *
 * The library is the C allocator of any program that links it (-lgoheap_malloc, or
 * `pkg-config --cflags --libs goheap`) or runs with it preloaded
 * (LD_PRELOAD=libgoheap_malloc.so.0): malloc, free, calloc, realloc, reallocarray,
 * posix_memalign, aligned_alloc, memalign, valloc, pvalloc and malloc_usable_size are
 * goheap's, declared as usual by <stdlib.h> and <malloc.h>. This header declares what
 * goheap adds: its version, its statistics and a way to give free memory back to the OS.
 *
 * A program that may run with or without the library preloaded can declare these functions
 * weak (`#pragma weak goheap_stats`) and test their addresses for NULL before calling them.
 *
 * Compatibility. The library's SONAME is libgoheap_malloc.so.0; the 0 changes only when a
 * function here is removed or changes meaning. New functions and new fields at the end of
 * goheap_stats_t keep it: the struct starts with its size, which the caller sets and the
 * library answers (see goheap_stats), so a program built against an older or a newer
 * header works with any library of the same SONAME.
 *
 * Licensed under MIT OR Apache-2.0. */
#ifndef GOHEAP_H
#define GOHEAP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header. goheap_version() and goheap_version_string() give the
 * library's, which may be newer. GOHEAP_VERSION_NUMBER is MAJOR * 1000000 + MINOR * 1000 +
 * PATCH, as SQLITE_VERSION_NUMBER is. */
#define GOHEAP_VERSION_MAJOR 0
#define GOHEAP_VERSION_MINOR 1
#define GOHEAP_VERSION_PATCH 0
#define GOHEAP_VERSION_STRING "0.1.0"
#define GOHEAP_VERSION_NUMBER \
    (GOHEAP_VERSION_MAJOR * 1000000 + GOHEAP_VERSION_MINOR * 1000 + GOHEAP_VERSION_PATCH)

/* The library's version as GOHEAP_VERSION_NUMBER encodes it. */
unsigned long goheap_version(void);

/* The library's version as "MAJOR.MINOR.PATCH": a static string, never freed. */
const char *goheap_version_string(void);

/* A snapshot of the allocator's statistics, named after Go's runtime.MemStats. Byte
 * counts are of the whole heap (small objects are counted at their size class). At a
 * moment when no other thread allocates, heap_inuse + heap_idle == heap_sys,
 * heap_released <= heap_idle, heap_alloc <= heap_inuse and
 * mallocs - frees == heap_objects. */
typedef struct goheap_stats {
    /* In: sizeof the caller's struct. Out: the bytes the library filled in, fields from
     * the start; fields past it are left as they were. */
    size_t size;
    uint64_t heap_sys;       /* bytes of address space reserved from the OS for the heap */
    uint64_t heap_inuse;     /* bytes in spans in use (holding objects or owned by threads) */
    uint64_t heap_idle;      /* bytes of the heap not in spans: heap_sys - heap_inuse */
    uint64_t heap_released;  /* bytes of idle memory given back to the OS */
    uint64_t heap_alloc;     /* bytes of allocated objects */
    uint64_t heap_objects;   /* allocated objects */
    uint64_t total_alloc;    /* bytes allocated since the start, freed or not */
    uint64_t mallocs;        /* objects allocated since the start */
    uint64_t frees;          /* objects freed since the start */
    uint64_t released_total; /* bytes given back to the OS since the start */
    uint64_t peak_inuse;     /* the most heap_inuse has been */
} goheap_stats_t;

/* Fills *stats with the current statistics. Set stats->size = sizeof *stats first.
 * Returns 0, with stats->size set to the bytes filled (at most the size given, at most the
 * library's own struct), or EINVAL, with nothing written, when stats is NULL or
 * stats->size is smaller than a size_t and one field. Safe to call from any thread at any
 * time; while other threads allocate, each figure is read atomically but not all at the
 * same instant. */
int goheap_stats(goheap_stats_t *stats);

/* Gives as much memory back to the OS as possible now (Go's debug.FreeOSMemory): the
 * calling thread's empty spans and every empty span no thread owns go back to the page
 * heap, and every free page is released with madvise(MADV_DONTNEED). Returns the bytes
 * released by this call. Other threads' caches keep their spans. */
size_t goheap_release_memory(void);

#ifdef __cplusplus
}
#endif

#endif /* GOHEAP_H */
