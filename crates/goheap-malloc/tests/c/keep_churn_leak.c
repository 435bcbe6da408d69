/* Named functions that keep, churn and leak known amounts through malloc: the heap
 * profiler's attribution test under LD_PRELOAD (tests/profile.rs). `keep` holds 32 MiB in a
 * global until exit, `churn` allocates and frees 256 MiB, 1 MiB at a time, `leak` drops
 * 4 MiB on the floor (argv: KEEP CHURN LEAK in MiB, to change the amounts). Sizes cover
 * small classes and one large one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB (1u << 20)
static const size_t sizes[] = {64, 200, 1024, 4096, 40000};
#define NSIZES (sizeof sizes / sizeof sizes[0])

static void **kept;
static size_t nkept;

__attribute__((noinline)) static void keep(size_t bytes) {
    size_t total = 0, cap = 1024;
    kept = malloc(cap * sizeof *kept);
    for (size_t i = 0; total < bytes; i++) {
        size_t n = sizes[i % NSIZES];
        if (nkept == cap) {
            cap *= 2;
            kept = realloc(kept, cap * sizeof *kept);
        }
        kept[nkept] = malloc(n);
        memset(kept[nkept++], 1, n);
        total += n;
    }
}

__attribute__((noinline)) static void churn(size_t bytes) {
    static void *batch[4096];
    size_t total = 0, i = 0;
    while (total < bytes) {
        size_t b = 0, nb = 0;
        while (b < MIB) {
            size_t n = sizes[i++ % NSIZES];
            batch[nb] = malloc(n);
            memset(batch[nb++], 2, n);
            b += n;
        }
        for (size_t j = 0; j < nb; j++) {
            free(batch[j]);
            batch[j] = 0;
        }
        total += b;
    }
}

__attribute__((noinline)) static void leak(size_t bytes) {
    size_t total = 0;
    for (size_t i = 0; total < bytes; i++) {
        size_t n = sizes[i % NSIZES];
        void *volatile p = malloc(n);
        memset(p, 3, n);
        total += n;
    }
}

int main(int argc, char **argv) {
    size_t k = 32, c = 256, l = 4;
    if (argc == 4) {
        k = strtoul(argv[1], 0, 10);
        c = strtoul(argv[2], 0, 10);
        l = strtoul(argv[3], 0, 10);
    }
    keep(k * MIB);
    churn(c * MIB);
    leak(l * MIB);
    printf("kept %zu blocks\n", nkept);
    return 0;
}
