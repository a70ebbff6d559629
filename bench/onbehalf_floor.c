/* onbehalf_floor N PORT: the floor, on this machine, for a connect that a
 * supervisor performs on the workload's behalf, without sandlock. A forked
 * child installs a seccomp filter that sends connect to a user-notification
 * listener (sync wake-up set, as sandlock does) and hands the listener to the
 * parent. The parent answers each notification with the fewest steps the
 * design allows: read the address from the child's memory through a cached
 * /proc/PID/mem fd, duplicate the socket through a cached pidfd
 * (pidfd_getfd), connect the duplicate, close it, reply with the result. No
 * policy decision, no blocking bound, no socket type check. The child runs
 * connect_loop's "connect-only" loop (socket, timed connect to
 * 127.0.0.1:PORT, SO_LINGER 0, close) and prints nanoseconds per connect. */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common.h"
#include "notify.h"

/* The workload: connect_loop's connect-only loop. */
static int workload(long n, long port, int sock) {
    int lfd = trap_one(SYS_connect);
    if (lfd < 0) { perror("seccomp"); return 1; }
    if (send_fd(sock, lfd) != 0) { perror("sendmsg"); return 1; }
    close(lfd);
    struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
    dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    long long in_connect = 0;
    for (long i = 0; i < n + n / 10 + 1; i++) {
        if (i == n / 10 + 1) in_connect = 0;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) { perror("socket"); return 1; }
        long long c0 = now_ns();
        if (connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0) { perror("connect"); return 1; }
        in_connect += now_ns() - c0;
        struct linger lg = { .l_onoff = 1, .l_linger = 0 };
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(fd);
    }
    report(n, 0, in_connect);
    return 0;
}

/* The supervisor: performs each trapped connect on the child's behalf. */
static void serve(int lfd, pid_t pid) {
    if (ioctl(lfd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) != 0)
        perror("SECCOMP_IOCTL_NOTIF_SET_FLAGS (sync wake-up unavailable)");
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/mem", (int)pid);
    int mem = open(path, O_RDONLY | O_CLOEXEC);
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (mem < 0 || pidfd < 0) { perror("mem/pidfd"); exit(1); }
    for (;;) {
        struct pollfd p = { .fd = lfd, .events = POLLIN };
        if (poll(&p, 1, -1) < 0 && errno != EINTR) break;
        if ((p.revents & POLLHUP) && !(p.revents & POLLIN)) break;
        struct seccomp_notif req;
        memset(&req, 0, sizeof req);
        if (ioctl(lfd, SECCOMP_IOCTL_NOTIF_RECV, &req) != 0) continue;
        struct seccomp_notif_resp resp = { .id = req.id };
        struct sockaddr_storage sa;
        size_t len = (size_t)req.data.args[2];
        if (len > sizeof sa || pread(mem, &sa, len, (off_t)req.data.args[1]) != (ssize_t)len) {
            resp.error = -EFAULT;
        } else {
            int dup = (int)syscall(SYS_pidfd_getfd, pidfd, (int)req.data.args[0], 0);
            if (dup < 0) {
                resp.error = -errno;
            } else {
                if (connect(dup, (struct sockaddr *)&sa, (socklen_t)len) != 0) resp.error = -errno;
                close(dup);
            }
        }
        ioctl(lfd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
    }
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s N PORT\n", argv[0]); return 2; }
    long n = parse_count(argv[1]);
    long port = parse_count(argv[2]);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) { perror("socketpair"); return 1; }
    fflush(stdout);
    pid_t child = fork();
    if (child < 0) { perror("fork"); return 1; }
    if (child == 0) {
        close(sv[0]);
        int rc = workload(n, port, sv[1]);
        fflush(stdout);
        _exit(rc);
    }
    close(sv[1]);
    int lfd = recv_fd(sv[0]);
    if (lfd < 0) { fprintf(stderr, "no listener from the child\n"); return 1; }
    serve(lfd, child);
    int status = 0;
    waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
