/* The program for early.c (see there): it finds the constructor's blocks through dlsym (it
 * does not link the library, which is only preloaded), checks them, frees them, and checks
 * that it is the process's only thread. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

int main(void) {
    void **small = dlsym(RTLD_DEFAULT, "early_small");
    void **large = dlsym(RTLD_DEFAULT, "early_large");
    CHECK(small && large);
    if (!small || !large)
        return 1;
    CHECK(*small != NULL && strcmp(*small, "allocated in a constructor") == 0);
    CHECK(*large != NULL && ((unsigned char *)*large)[12345] == 1);
    int threads = count_threads();
    printf("threads %d\n", threads);
    CHECK(threads == 1);
    free(*small);
    free(*large);
    if (failures)
        return 1;
    printf("early ok\n");
    return 0;
}
