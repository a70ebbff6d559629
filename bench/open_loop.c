/* open_loop N PATH [read]: N x open(PATH, O_RDONLY) [+ read to EOF] + close.
 * Prints nanoseconds per iteration (CLOCK_MONOTONIC around the timed loop).
 * A warm-up of N/10 iterations runs first and is not timed. */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include "common.h"

static void once(const char *path, int do_read) {
    char buf[4096];
    int fd = open(path, O_RDONLY);
    if (fd < 0) { perror(path); exit(1); }
    if (do_read) {
        ssize_t r;
        while ((r = read(fd, buf, sizeof buf)) > 0) {}
        if (r < 0) { perror("read"); exit(1); }
    }
    close(fd);
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4 || (argc == 4 && strcmp(argv[3], "read") != 0)) {
        fprintf(stderr, "usage: %s N PATH [read]\n", argv[0]);
        return 2;
    }
    long n = parse_count(argv[1]);
    const char *path = argv[2];
    int do_read = argc == 4;
    for (long i = 0; i < n / 10 + 1; i++) once(path, do_read);
    long long t0 = now_ns();
    for (long i = 0; i < n; i++) once(path, do_read);
    long long t1 = now_ns();
    report(n, t0, t1);
    return 0;
}
