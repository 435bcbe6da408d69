/*
 * binary-trees with the Boehm-Demers-Weiser collector: one GC_MALLOC per
 * node, never freed explicitly, default collector settings (no
 * GC_set_free_space_divisor, no incremental mode; GC_MARKERS etc. are left
 * to the environment, so the packaged default of parallel marking applies).
 * Algorithm and output text as in the Computer Language Benchmarks Game.
 *
 * Pause measurement: GC_set_on_collection_event() is called with
 * GC_EVENT_START when a collection begins and GC_EVENT_END when it ends,
 * both on the thread that runs the collection. This program has one mutator
 * thread and the collector is not incremental, so that thread is stopped for
 * the whole START..END interval: we time it with
 * clock_gettime(CLOCK_MONOTONIC) and report the longest one. Boehm sweeps
 * lazily (most reclamation happens later, inside allocation calls), so that
 * sweep work is not part of the measured pause, just as Go's concurrent
 * sweeping is not part of Go's.
 *
 * stderr after the result: "max-pause-ms: <float>", "gc-cycles:
 * <GC_get_gc_no()>", "total-pause-ms: <float>".
 */
#include <gc.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct Node {
    struct Node *left, *right;
} Node;

static Node *bottom_up(int depth) {
    Node *n = (Node *)GC_MALLOC(sizeof(Node)); /* GC_MALLOC returns zeroed memory */
    if (depth > 0) {
        n->left = bottom_up(depth - 1);
        n->right = bottom_up(depth - 1);
    }
    return n;
}

static long check(const Node *n) {
    if (n->left == NULL)
        return 1;
    return 1 + check(n->left) + check(n->right);
}

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double gc_start_ns = -1.0;
static double max_pause_ns = 0.0;
static double total_pause_ns = 0.0;

static void on_gc_event(GC_EventType ev) {
    if (ev == GC_EVENT_START) {
        gc_start_ns = now_ns();
    } else if (ev == GC_EVENT_END && gc_start_ns >= 0.0) {
        double p = now_ns() - gc_start_ns;
        gc_start_ns = -1.0;
        total_pause_ns += p;
        if (p > max_pause_ns)
            max_pause_ns = p;
    }
}

int main(int argc, char **argv) {
    GC_INIT();
    GC_set_on_collection_event(on_gc_event);

    int n = argc > 1 ? atoi(argv[1]) : 0;
    const int min_depth = 4;
    int max_depth = n < min_depth + 2 ? min_depth + 2 : n;

    {
        int stretch = max_depth + 1;
        Node *t = bottom_up(stretch);
        printf("stretch tree of depth %d\t check: %ld\n", stretch, check(t));
        t = NULL;
    }

    Node *long_lived = bottom_up(max_depth);

    for (int d = min_depth; d <= max_depth; d += 2) {
        long iterations = 1L << (max_depth - d + min_depth);
        long sum = 0;
        for (long i = 0; i < iterations; i++)
            sum += check(bottom_up(d));
        printf("%ld\t trees of depth %d\t check: %ld\n", iterations, d, sum);
    }

    printf("long lived tree of depth %d\t check: %ld\n", max_depth, check(long_lived));
    fflush(stdout);

    fprintf(stderr, "max-pause-ms: %.3f\n", max_pause_ns / 1e6);
    fprintf(stderr, "gc-cycles: %lu\n", (unsigned long)GC_get_gc_no());
    fprintf(stderr, "total-pause-ms: %.3f\n", total_pause_ns / 1e6);
    return 0;
}
