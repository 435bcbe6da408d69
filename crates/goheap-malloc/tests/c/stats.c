/* Known allocations for the GOHEAP_STATS=1 report: 1000 blocks of 20,000 bytes (a size class,
 * 20,480, that nothing else in a small C program uses), 400 of them freed; 5 large blocks of
 * 1 MiB, 2 freed. tests/stats.rs checks the report's rows against these numbers exactly.
 * An atexit handler registered by main runs before the report (handlers run in reverse
 * order of registration) and frees 100 more, which the report must include. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *blocks[1000];

static void free_more(void) {
    for (int i = 400; i < 500; i++)
        free(blocks[i]);
    printf("atexit handler ran\n");
    fflush(stdout);
}

int main(void) {
    for (int i = 0; i < 1000; i++) {
        blocks[i] = malloc(20000);
        memset(blocks[i], i, 20000);
    }
    for (int i = 0; i < 400; i++)
        free(blocks[i]);
    void *large[5];
    for (int i = 0; i < 5; i++)
        large[i] = malloc(1 << 20);
    free(large[0]);
    free(large[1]);
    atexit(free_more);
    printf("stats program done\n");
    return 0;
}
