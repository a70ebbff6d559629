/* interleave N CMD... [:: CMD...]...: runs the commands in turn, N rounds
 * (after 10 rounds of warm-up), and prints each one's wall time in ms:
 * median, mean, 10th and 90th percentile. Interleaving makes drift on a
 * shared machine hit every command alike, where hyperfine's one command
 * after the other lets it land on one of them.
 *
 *   cc -O2 -o /tmp/interleave bench/interleave.c
 *   /tmp/interleave 300 /bin/true :: target/release/sandlock run -- /bin/true
 *
 * A command's output goes to /dev/null; one that exits non-zero is
 * reported on stderr and makes the exit status 1. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

#define MAX_CMDS 16

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Runs argv once, output discarded; its wall time in ms, or -1 when it
 * did not exit 0. */
static double run(char **argv, int null) {
    long long t0 = now_ns();
    pid_t pid = fork();
    if (pid == 0) {
        dup2(null, 1);
        dup2(null, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        return -1;
    double ms = (double)(now_ns() - t0) / 1e6;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? ms : -1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s N CMD... [:: CMD...]...\n", argv[0]);
        return 2;
    }
    long n = parse_count(argv[1]);
    char **cmds[MAX_CMDS];
    int nc = 0;
    cmds[nc++] = argv + 2;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "::") != 0)
            continue;
        if (nc == MAX_CMDS) {
            fprintf(stderr, "at most %d commands\n", MAX_CMDS);
            return 2;
        }
        argv[i] = NULL;
        cmds[nc++] = argv + i + 1;
    }
    int null = open("/dev/null", O_RDWR);
    double *t = calloc((size_t)n * (size_t)nc, sizeof(double));
    if (null < 0 || t == NULL) {
        perror("setup");
        return 2;
    }
    int failed = 0;
    for (int w = 0; w < 10; w++)
        for (int c = 0; c < nc; c++)
            run(cmds[c], null);
    for (long i = 0; i < n; i++) {
        for (int c = 0; c < nc; c++) {
            double ms = run(cmds[c], null);
            if (ms < 0) {
                fprintf(stderr, "failed: %s (round %ld)\n", cmds[c][0], i);
                failed = 1;
                ms = 0;
            }
            t[c * n + i] = ms;
        }
    }
    for (int c = 0; c < nc; c++) {
        double *v = t + c * n, sum = 0;
        for (long i = 0; i < n; i++)
            sum += v[i];
        qsort(v, (size_t)n, sizeof(double), cmp);
        printf("median %6.2f  mean %6.2f  p10 %6.2f  p90 %6.2f ms  ", v[n / 2], sum / (double)n,
               v[n / 10], v[n * 9 / 10]);
        for (char **a = cmds[c]; *a; a++)
            printf("%s%s", a == cmds[c] ? "" : " ", *a);
        printf("\n");
    }
    return failed;
}
