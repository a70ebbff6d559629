/* getpid_loop N [filter]: N x raw syscall(SYS_getppid) (never cached by libc,
 * never trapped by sandlock). Prints nanoseconds per call.
 * With "filter", first installs a one-instruction allow-all seccomp filter:
 * the fixed cost of having any filter at all, as a reference point for the
 * cost of sandlock's (longer) filter. */
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "common.h"

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "filter") != 0)) {
        fprintf(stderr, "usage: %s N [filter]\n", argv[0]);
        return 2;
    }
    long n = parse_count(argv[1]);
    if (argc == 3) {
        struct sock_filter code[] = { BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW) };
        struct sock_fprog prog = { .len = 1, .filter = code };
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) { perror("no_new_privs"); return 1; }
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) { perror("seccomp"); return 1; }
    }
    volatile long sink = 0;
    for (long i = 0; i < n / 10 + 1; i++) sink += syscall(SYS_getppid);
    long long t0 = now_ns();
    for (long i = 0; i < n; i++) sink += syscall(SYS_getppid);
    long long t1 = now_ns();
    report(n, t0, t1);
    return 0;
}
