/* notify_floor N [nosync] [process] [2rx] [open]: the kernel's floor for one trapped
 * syscall on this machine, without sandlock. The benchmark installs a seccomp
 * filter that sends getppid to a user-notification listener; a "supervisor"
 * answers each notification with CONTINUE, the cheapest possible answer.
 * The supervisor is a second thread of the same process, or with "process"
 * a forked child (a cross-address-space round trip, like sandlock's).
 * With "2rx" two supervisor threads wait in SECCOMP_IOCTL_NOTIF_RECV at once
 * (as sandlock's receiver pool does): shows the cost of waking both.
 * SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP is set (as sandlock does) unless
 * "nosync" is given. With "open" the trapped call is openat instead, in a
 * loop of open+close of /etc/passwd (the trapped-open benchmark's loop, with
 * no Landlock and no argument read). Prints nanoseconds per iteration. */
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "common.h"
#include "notify.h"

static int listener = -1;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

static void serve(int fd) { serve_continue(fd, NULL); }

/* One iteration of the timed loop: a trapped getppid, or an open+close of
 * /etc/passwd whose openat is trapped. */
static long trapped(int open_mode) {
    if (!open_mode) return syscall(SYS_getppid);
    int f = open("/etc/passwd", O_RDONLY);
    if (f < 0) { perror("open /etc/passwd"); exit(1); }
    close(f);
    return f;
}

static void *supervise(void *arg) {
    (void)arg;
    pthread_mutex_lock(&mu);
    while (listener < 0) pthread_cond_wait(&cv, &mu);
    int fd = listener;
    pthread_mutex_unlock(&mu);
    serve(fd);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s N [nosync] [process] [2rx] [open]\n", argv[0]); return 2; }
    long n = parse_count(argv[1]);
    int sync = 1, process = 0, receivers = 1, open_mode = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "nosync") == 0) sync = 0;
        else if (strcmp(argv[i], "process") == 0) process = 1;
        else if (strcmp(argv[i], "2rx") == 0) receivers = 2;
        else if (strcmp(argv[i], "open") == 0) open_mode = 1;
        else { fprintf(stderr, "usage: %s N [nosync] [process] [2rx] [open]\n", argv[0]); return 2; }
    }

    pthread_t th;
    for (int i = 0; i < receivers && !process; i++)
        if (pthread_create(&th, NULL, supervise, NULL) != 0) { perror("pthread_create"); return 1; }

    /* Without TSYNC the filter applies to this thread only, not the supervisor. */
    int fd = trap_one(open_mode ? SYS_openat : SYS_getppid);
    if (fd < 0) { perror("seccomp"); return 1; }
    if (sync && ioctl(fd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) != 0)
        perror("SECCOMP_IOCTL_NOTIF_SET_FLAGS (sync wake-up unavailable)");
    pid_t child = -1;
    if (process) {
        /* The child inherits the filter (it never calls getppid) and the
         * listener, and answers from its own address space. */
        child = fork();
        if (child < 0) { perror("fork"); return 1; }
        if (child == 0) {
            if (receivers == 2) {
                listener = fd;
                if (pthread_create(&th, NULL, supervise, NULL) != 0) _exit(1);
            }
            serve(fd);
            _exit(0);
        }
    } else {
        pthread_mutex_lock(&mu);
        listener = fd;
        pthread_cond_broadcast(&cv);
        pthread_mutex_unlock(&mu);
    }

    volatile long sink = 0;
    for (long i = 0; i < n / 10 + 1; i++) sink += trapped(open_mode);
    long long t0 = now_ns();
    for (long i = 0; i < n; i++) sink += trapped(open_mode);
    long long t1 = now_ns();
    report(n, t0, t1);
    fflush(stdout);
    if (child > 0) { kill(child, SIGKILL); waitpid(child, NULL, 0); }
    return 0;
}
