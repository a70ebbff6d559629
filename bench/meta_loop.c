/* meta_loop N MODE DIR: N iterations of one call the sandlock supervisor
 * decides since issue 12, on a file or socket under DIR (a write grant, or
 * the sandbox's TMPDIR). Prints nanoseconds per iteration (CLOCK_MONOTONIC
 * around the timed loop, after an untimed warm-up of N/10).
 *
 *   chmod     chmod(DIR/f, 0644 or 0600, alternating)
 *   fchmod    fchmod on an fd of DIR/f
 *   utimens   utimensat(AT_FDCWD, DIR/f, NULL, 0): both times to now
 *   sendmsg   sendmsg of 64 bytes on one end of a unix stream socketpair,
 *             the other end drained (the socketpair lives in the process:
 *             every sendmsg traps, whatever the socket)
 *   connect   socket + connect + close to a unix listener at DIR/s that a
 *             thread of this process accepts and closes
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "common.h"

static char file[4096], sock_path[108];
static int fd = -1, pair[2] = {-1, -1}, listener = -1;

static void *drain(void *arg) {
    (void)arg;
    char buf[65536];
    while (read(pair[1], buf, sizeof buf) > 0) {}
    return NULL;
}

static void *accepter(void *arg) {
    (void)arg;
    for (;;) {
        int c = accept(listener, NULL, NULL);
        if (c >= 0) close(c);
    }
    return NULL;
}

static void fail(const char *what) { perror(what); exit(1); }

static void once(const char *mode, long i) {
    if (!strcmp(mode, "chmod")) {
        if (chmod(file, i & 1 ? 0600 : 0644) != 0) fail("chmod");
    } else if (!strcmp(mode, "fchmod")) {
        if (fchmod(fd, i & 1 ? 0600 : 0644) != 0) fail("fchmod");
    } else if (!strcmp(mode, "utimens")) {
        if (utimensat(AT_FDCWD, file, NULL, 0) != 0) fail("utimensat");
    } else if (!strcmp(mode, "sendmsg")) {
        char data[64] = {0};
        struct iovec v = {.iov_base = data, .iov_len = sizeof data};
        struct msghdr m = {.msg_iov = &v, .msg_iovlen = 1};
        if (sendmsg(pair[0], &m, 0) != (ssize_t)sizeof data) fail("sendmsg");
    } else {
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        memcpy(a.sun_path, sock_path, sizeof a.sun_path);
        if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) != 0) fail("connect");
        close(s);
    }
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s N chmod|fchmod|utimens|sendmsg|connect DIR\n", argv[0]);
        return 2;
    }
    long n = parse_count(argv[1]);
    const char *mode = argv[2];
    snprintf(file, sizeof file, "%s/f", argv[3]);
    snprintf(sock_path, sizeof sock_path, "%s/s", argv[3]);
    fd = open(file, O_CREAT | O_RDWR, 0644);
    if (fd < 0) fail(file);
    pthread_t t;
    if (!strcmp(mode, "sendmsg")) {
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0) fail("socketpair");
        pthread_create(&t, NULL, drain, NULL);
    } else if (!strcmp(mode, "connect")) {
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        memcpy(a.sun_path, sock_path, sizeof a.sun_path);
        unlink(sock_path);
        listener = socket(AF_UNIX, SOCK_STREAM, 0);
        if (listener < 0 || bind(listener, (struct sockaddr *)&a, sizeof a) != 0 ||
            listen(listener, 4096) != 0)
            fail("listen");
        pthread_create(&t, NULL, accepter, NULL);
    }
    for (long i = 0; i < n / 10 + 1; i++) once(mode, i);
    long long t0 = now_ns();
    for (long i = 0; i < n; i++) once(mode, i);
    long long t1 = now_ns();
    report(n, t0, t1);
    unlink(file);
    unlink(sock_path);
    fflush(stdout);
    _exit(0); /* the helper thread blocks in read or accept */
}
