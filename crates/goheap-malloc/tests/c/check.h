/* Shared by the C test programs: a CHECK macro that reports and counts failures instead of
 * stopping at the first, a thread counter, and a small deterministic random generator.
 *
 * The programs are compiled by the Rust tests (see tests/common/mod.rs) and
 * must say "... ok" on stdout and exit 0; anything else fails the test, with the program's
 * stderr in the message. */
#ifndef GOHEAP_CHECK_H
#define GOHEAP_CHECK_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>

static int failures __attribute__((unused));

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__,   \
                    #cond);                                                      \
            failures++;                                                          \
        }                                                                        \
    } while (0)

#define ALIGNED(p, a) ((((uintptr_t)(p)) & ((uintptr_t)(a) - 1)) == 0)

/* Threads of this process, from /proc/self/task (opendir allocates, which is fine). */
static inline int count_threads(void) {
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    if (!d)
        return -1;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* splitmix64 */
static inline uint64_t next_rand(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A size from 1 byte to 256 KiB, mostly small, as real programs ask. */
static inline size_t rand_size(uint64_t *s) {
    uint64_t r = next_rand(s);
    unsigned bits = (r % 100) < 80 ? 1 + (r >> 8) % 9 : (r % 100) < 97 ? 1 + (r >> 8) % 15
                                                                       : 1 + (r >> 8) % 18;
    return 1 + (size_t)((r >> 32) % ((uint64_t)1 << bits));
}

/* Fills / checks a block with a pattern derived from its address and size. */
static inline void fill(unsigned char *p, size_t n) {
    unsigned char v = (unsigned char)(((uintptr_t)p >> 4) ^ n);
    size_t step = n > 4096 ? 512 : 1;
    for (size_t i = 0; i < n; i += step)
        p[i] = (unsigned char)(v + i);
    p[n - 1] = (unsigned char)(v + 7);
}

static inline int intact(const unsigned char *p, size_t n) {
    unsigned char v = (unsigned char)(((uintptr_t)p >> 4) ^ n);
    size_t step = n > 4096 ? 512 : 1;
    if (p[n - 1] != (unsigned char)(v + 7))
        return 0;
    for (size_t i = 0; i + 1 < n; i += step)
        if (p[i] != (unsigned char)(v + i))
            return 0;
    return 1;
}

#endif
