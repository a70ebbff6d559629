/* getpid_loop N: N x raw syscall(SYS_getppid) (never cached by libc, never
 * trapped by sandlock). Prints nanoseconds per call. */
#include <sys/syscall.h>
#include <unistd.h>
#include "common.h"

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s N\n", argv[0]); return 2; }
    long n = parse_count(argv[1]);
    volatile long sink = 0;
    for (long i = 0; i < n / 10 + 1; i++) sink += syscall(SYS_getppid);
    long long t0 = now_ns();
    for (long i = 0; i < n; i++) sink += syscall(SYS_getppid);
    long long t1 = now_ns();
    report(n, t0, t1);
    return 0;
}
