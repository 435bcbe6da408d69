/* A library whose constructor allocates before goheap's constructor has run: preloaded as
 * LD_PRELOAD="libgoheap_malloc.so:libearly.so", it comes after goheap in the lookup order
 * (so its malloc is goheap's) but is initialised before goheap (ld.so initialises the later
 * of two independent libraries first). It allocates a large block (goheap grows its heap,
 * the moment the background scavenger would start) and a small one, and registers an atexit
 * handler, which runs after goheap's statistics report only if it was registered first,
 * that is, only if this constructor really ran before goheap's. tests/api.rs checks both the
 * order and that the program then sees exactly one thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void *early_small, *early_large;

static void early_exit(void) {
    static const char msg[] = "early atexit handler\n";
    write(2, msg, sizeof msg - 1);
}

__attribute__((constructor)) static void early_ctor(void) {
    early_large = malloc(1 << 20);
    memset(early_large, 1, 1 << 20);
    early_small = malloc(40);
    strcpy(early_small, "allocated in a constructor");
    atexit(early_exit);
}
