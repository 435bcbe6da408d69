/*
 * glibc-simple: batches of equal-size blocks, freed half in order, half in
 * reverse.
 *
 * Imitates glibc's benchtests/bench-malloc-simple.c as mimalloc-bench runs it
 * as glibc-simple:
 *
 *     glibc-simple [TOTAL]     (TOTAL: mallocs per case, default 2,000,000)
 *
 * For each block size 16, 32 and 64 bytes in turn: for each batch length n in
 * {25, 100, 400, 1600}, TOTAL / n rounds of: malloc n blocks, writing every
 * byte; free the first half in allocation order (FIFO) and the second half in
 * reverse order (LIFO). The four cases run four times per size: a warm-up and
 * a run on the main thread, a run in a new thread, and a run on the main
 * thread again, now that the process is multi-threaded (glibc then takes its
 * atomic paths). (glibc's own version frees every batch in allocation order.)
 *
 * Check: the first and last byte of every block are read back before it is
 * freed.
 */
#include "common.h"

#include <pthread.h>

static size_t total;
static unsigned long long errors;

static void run_case(size_t size, size_t n, const char *where)
{
    unsigned char **a = must_malloc(n * sizeof *a);
    size_t rounds = total / n;
    unsigned long long bad = 0;
    double t0 = now_s();
    for (size_t r = 0; r < rounds; r++) {
        for (size_t i = 0; i < n; i++) {
            a[i] = must_malloc(size);
            memset(a[i], (int)(unsigned char)(i + r), size);
        }
        for (size_t i = 0; i < n / 2; i++) {
            unsigned char v = (unsigned char)(i + r);
            bad += a[i][0] != v || a[i][size - 1] != v;
            free(a[i]);
        }
        for (size_t i = n; i-- > n / 2;) {
            unsigned char v = (unsigned char)(i + r);
            bad += a[i][0] != v || a[i][size - 1] != v;
            free(a[i]);
        }
    }
    double t = now_s() - t0;
    free(a);
    errors += bad;
    printf("%-12s size %2zu  n %4zu  %6.2f ns per malloc+free\n", where, size, n,
           t * 1e9 / (double)(rounds * n));
}

static size_t cur_size;

static void run_all(const char *where)
{
    static const size_t lengths[] = { 25, 100, 400, 1600 };
    for (int l = 0; l < 4; l++)
        run_case(cur_size, lengths[l], where);
}

static void *in_thread(void *arg)
{
    (void)arg;
    run_all("thread");
    return NULL;
}

int main(int argc, char **argv)
{
    total = (size_t)arg_long(argc, argv, 1, 2000000);
    print_malloc_source();
    double t0 = now_s();
    for (cur_size = 16; cur_size <= 64; cur_size *= 2) {
        run_all("warm-up");
        run_all("main");
        pthread_t t;
        if (pthread_create(&t, NULL, in_thread, NULL) != 0) {
            printf("check: FAILED pthread_create\n");
            return 1;
        }
        pthread_join(t, NULL);
        run_all("main (mt)");
    }
    printf("elapsed: %.3f s\n", now_s() - t0);
    return finish(errors, "first and last byte of every block read back");
}
