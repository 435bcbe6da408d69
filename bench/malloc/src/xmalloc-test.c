/*
 * xmalloc-test: producers malloc, consumers free; every free is cross-thread.
 *
 * Imitates xmalloc-test (Lever & Boreham, "malloc() performance in a
 * multithreaded Linux environment", USENIX 2000; later revised by C. Eder) as
 * mimalloc-bench runs it:
 *
 *     xmalloc-test -w WORKERS -t SECONDS -s SIZE
 *     (bench.sh: xmalloc-test -w P -t 5 -s 64)
 *
 * WORKERS producer threads malloc batches of 4096 SIZE-byte objects and push
 * each batch on one shared stack that holds at most 100 batches (a full stack
 * blocks the producers); WORKERS consumer threads pop batches and free every
 * object and the batch itself. After SECONDS the program prints frees per
 * second and, like bench.sh, relative time = 100 / (million frees per
 * second), i.e. seconds per 10^8 frees. Its peak RSS means little: the faster
 * the producers, the more is in flight.
 *
 * Check: producers fill each object's first 128 bytes (at most) and stamp its
 * first word; consumers read stamp and last filled byte back before freeing.
 */
#include "common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#define BATCH 4096
#define MAX_BATCHES 100
#define MAGIC 0x6a09e667f3bcc908ULL

typedef struct batch {
    struct batch *next;
    uint64_t id;
    uint64_t *obj[BATCH];
} batch_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t not_full = PTHREAD_COND_INITIALIZER;
static batch_t *top;
static int depth;
static atomic_int stop;
static atomic_ullong next_id, frees, errors;
static size_t size, fill; /* fill: the bytes written, at most 128 */

static uint64_t tag(uint64_t id, int i)
{
    return (id * BATCH + (uint64_t)i) ^ MAGIC;
}

/* Read back and free every object of a batch, then the batch; returns the number of frees. */
static uint64_t free_batch(batch_t *b)
{
    uint64_t bad = 0;
    for (int i = 0; i < BATCH; i++) {
        uint64_t *o = b->obj[i];
        if (o[0] != tag(b->id, i) || (fill > 8 && ((unsigned char *)o)[fill - 1] != (unsigned char)i))
            bad++;
        free(o);
    }
    free(b);
    if (bad)
        atomic_fetch_add(&errors, bad);
    return BATCH + 1;
}

static void *producer(void *arg)
{
    (void)arg;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        batch_t *b = must_malloc(sizeof *b);
        b->id = atomic_fetch_add(&next_id, 1);
        for (int i = 0; i < BATCH; i++) {
            uint64_t *o = must_malloc(size);
            memset(o, i, fill);
            o[0] = tag(b->id, i);
            b->obj[i] = o;
        }
        pthread_mutex_lock(&mu);
        while (depth == MAX_BATCHES && !atomic_load(&stop))
            pthread_cond_wait(&not_full, &mu);
        b->next = top;
        top = b;
        depth++;
        pthread_cond_signal(&not_empty);
        pthread_mutex_unlock(&mu);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    uint64_t mine = 0;
    for (;;) {
        pthread_mutex_lock(&mu);
        while (depth == 0 && !atomic_load(&stop))
            pthread_cond_wait(&not_empty, &mu);
        if (atomic_load(&stop)) {
            pthread_mutex_unlock(&mu);
            break;
        }
        batch_t *b = top;
        top = b->next;
        depth--;
        pthread_cond_signal(&not_full);
        pthread_mutex_unlock(&mu);
        mine += free_batch(b);
    }
    atomic_fetch_add(&frees, mine);
    return NULL;
}

int main(int argc, char **argv)
{
    int workers = 2;
    double seconds = 5;
    size = 64;
    int c;
    while ((c = getopt(argc, argv, "w:t:s:")) != -1) {
        switch (c) {
        case 'w': workers = atoi(optarg); break;
        case 't': seconds = atof(optarg); break;
        case 's': size = (size_t)atol(optarg); break;
        default:
            fprintf(stderr, "usage: xmalloc-test -w WORKERS -t SECONDS -s SIZE\n");
            return 2;
        }
    }
    if (workers < 1 || seconds <= 0 || size < sizeof(uint64_t)) {
        fprintf(stderr, "xmalloc-test: need WORKERS >= 1, SECONDS > 0, SIZE >= 8\n");
        return 2;
    }
    fill = size < 128 ? size : 128;
    print_malloc_source();

    pthread_t *t = must_malloc(2 * (size_t)workers * sizeof *t);
    double t0 = now_s();
    for (int i = 0; i < workers; i++) {
        if (pthread_create(&t[2 * i], NULL, producer, NULL) != 0 ||
            pthread_create(&t[2 * i + 1], NULL, consumer, NULL) != 0) {
            printf("check: FAILED pthread_create\n");
            return 1;
        }
    }
    sleep_s(seconds);
    pthread_mutex_lock(&mu);
    atomic_store(&stop, 1);
    double t1 = now_s();
    pthread_cond_broadcast(&not_empty);
    pthread_cond_broadcast(&not_full);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < 2 * workers; i++)
        pthread_join(t[i], NULL);
    free(t);

    /* What is still on the stack is freed here, uncounted. */
    uint64_t left = 0;
    while (top) {
        batch_t *b = top;
        top = b->next;
        free_batch(b);
        left++;
    }

    double rate = (double)atomic_load(&frees) / (t1 - t0);
    printf("frees: %llu in %.3f s, %.3f Mfree/s, %llu batches left at stop\n",
           (unsigned long long)atomic_load(&frees), t1 - t0, rate / 1e6, (unsigned long long)left);
    printf("relative-time: %.6f\n", 100.0 / (rate / 1e6));
    return finish(atomic_load(&errors), "object stamps read back by the freeing thread");
}
