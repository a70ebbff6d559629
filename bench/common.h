/* Shared helpers for the sandlock microbenchmarks. */
#ifndef SANDLOCK_BENCH_COMMON_H
#define SANDLOCK_BENCH_COMMON_H
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline long parse_count(const char *s) {
    char *end;
    long n = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || n <= 0) {
        fprintf(stderr, "bad count: %s\n", s);
        exit(2);
    }
    return n;
}

/* The one line of output every benchmark prints: ns per iteration. */
static inline void report(long n, long long t0, long long t1) {
    printf("%.1f\n", (double)(t1 - t0) / (double)n);
}
#endif
