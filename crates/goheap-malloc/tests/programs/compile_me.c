/* A C program for tests/real_programs.rs to compile with gcc (itself running on goheap, with
 * cc1, as and ld) and then run. It allocates too: a sieve, a sorted array of strings and a
 * hash table, all printed deterministically. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    char *key;
    int count;
    struct entry *next;
};

static unsigned hash(const char *s) {
    unsigned h = 2166136261u;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 16777619u;
    return h;
}

static int cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void) {
    int n = 200000;
    char *sieve = calloc(n + 1, 1);
    int primes = 0;
    for (int i = 2; i <= n; i++) {
        if (sieve[i])
            continue;
        primes++;
        for (long j = (long)i * i; j <= n; j += i)
            sieve[j] = 1;
    }
    free(sieve);
    printf("primes below %d: %d\n", n, primes);

    int m = 20000;
    char **words = malloc(m * sizeof *words);
    for (int i = 0; i < m; i++) {
        char buf[32];
        snprintf(buf, sizeof buf, "w%u", (unsigned)(i * 2654435761u) % 5000);
        words[i] = strdup(buf);
    }
    qsort(words, m, sizeof *words, cmp);
    printf("first %s last %s\n", words[0], words[m - 1]);

    struct entry *table[1024] = {0};
    int distinct = 0;
    for (int i = 0; i < m; i++) {
        unsigned b = hash(words[i]) % 1024;
        struct entry *e = table[b];
        while (e && strcmp(e->key, words[i]))
            e = e->next;
        if (!e) {
            e = malloc(sizeof *e);
            e->key = words[i];
            e->count = 0;
            e->next = table[b];
            table[b] = e;
            distinct++;
        }
        e->count++;
    }
    int most = 0;
    for (int b = 0; b < 1024; b++)
        for (struct entry *e = table[b]; e; e = e->next)
            if (e->count > most)
                most = e->count;
    printf("distinct %d, most frequent %d times\n", distinct, most);
    for (int b = 0; b < 1024; b++) {
        struct entry *e = table[b];
        while (e) {
            struct entry *next = e->next;
            free(e);
            e = next;
        }
    }
    for (int i = 0; i < m; i++)
        free(words[i]);
    free(words);
    return 0;
}
