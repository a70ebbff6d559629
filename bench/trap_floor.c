/* trap_floor open|open+stat CMD [ARG...]: runs CMD with the calls sandlock
 * traps sent to a seccomp user-notification listener that a minimal
 * supervisor (this process, one thread) answers with CONTINUE at once: the
 * kernel's floor for a whole program whose calls trap as they do under
 * sandlock, with nothing read, resolved or decided. sandlock's share of a
 * trap-heavy workload is what it takes above this floor.
 *
 * "open" traps open and openat unless their flags make them something other
 * than a read (O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_PATH, O_DIRECTORY), as
 * sandlock's filter does whenever a virtual file exists (any network flag:
 * the sandbox's /etc/hosts). "open+stat" also traps the lookups by path that
 * sandlock traps while files exist only in the sandbox (an HTTP rule: the
 * CA): stat, lstat, access, faccessat, faccessat2, the extended-attribute
 * reads, and newfstatat and statx unless AT_EMPTY_PATH. x86_64 only.
 *
 * SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP is set, as sandlock does. Exits with
 * CMD's status; prints the number of trapped calls to stderr. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "notify.h"

#define NOT_A_READ (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_PATH | O_DIRECTORY)
#define ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i))

static long trapped;

static void *serve(void *arg) {
    serve_continue(*(int *)arg, &trapped);
    return NULL;
}

/* Appends to `code` at `*n`: call `nr` notifies unless the low 32 bits of
 * its argument `arg` have a bit of `mask` set (a flag that makes it no
 * read, or AT_EMPTY_PATH); other calls go on to the next block with the
 * call number loaded. */
static void notify_unless(struct sock_filter *code, int *n, long nr, int arg, unsigned mask) {
    struct sock_filter block[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 4),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(arg)),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, mask, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
    };
    for (size_t i = 0; i < sizeof block / sizeof block[0]; i++) code[(*n)++] = block[i];
}

/* Installs the filter on the calling thread and returns its listener. */
static int install(int with_stat) {
    struct sock_filter code[64];
    int n = 0;
#define S(op, val) (code[n++] = (struct sock_filter)BPF_STMT(op, val))
#define J(op, val, t, f) (code[n++] = (struct sock_filter)BPF_JUMP(op, val, t, f))
    S(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    J(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
    S(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    notify_unless(code, &n, SYS_open, 1, NOT_A_READ);
    notify_unless(code, &n, SYS_openat, 2, NOT_A_READ);
    if (with_stat) {
        static const long plain[] = { SYS_stat, SYS_lstat, SYS_access, SYS_faccessat,
                                      SYS_faccessat2, SYS_getxattr, SYS_lgetxattr,
                                      SYS_listxattr, SYS_llistxattr };
        for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
            J(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)plain[i], 0, 1);
            S(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF);
        }
        notify_unless(code, &n, SYS_newfstatat, 3, AT_EMPTY_PATH);
        notify_unless(code, &n, SYS_statx, 2, AT_EMPTY_PATH);
    }
    S(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
#undef S
#undef J
    struct sock_fprog prog = { .len = (unsigned short)n, .filter = code };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
}

int main(int argc, char **argv) {
    if (argc < 3 || (strcmp(argv[1], "open") != 0 && strcmp(argv[1], "open+stat") != 0)) {
        fprintf(stderr, "usage: %s open|open+stat CMD [ARG...]\n", argv[0]);
        return 2;
    }
    int with_stat = strcmp(argv[1], "open+stat") == 0;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) { perror("socketpair"); return 1; }
    pid_t child = fork();
    if (child < 0) { perror("fork"); return 1; }
    if (child == 0) {
        int fd = install(with_stat);
        if (fd < 0 || send_fd(sv[1], fd) != 0) { perror("seccomp listener"); _exit(127); }
        close(fd);
        /* Wait until the supervisor holds the listener: the exec's own
         * opens already trap. */
        char go;
        if (read(sv[1], &go, 1) != 1) _exit(127);
        execvp(argv[2], &argv[2]);
        perror(argv[2]);
        _exit(127);
    }
    int fd = recv_fd(sv[0]);
    if (fd < 0) { fprintf(stderr, "no listener from the child\n"); return 1; }
    if (ioctl(fd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) != 0)
        perror("SECCOMP_IOCTL_NOTIF_SET_FLAGS (sync wake-up unavailable)");
    pthread_t th;
    if (pthread_create(&th, NULL, serve, &fd) != 0) { perror("pthread_create"); return 1; }
    if (write(sv[0], "g", 1) != 1) { perror("write"); return 1; }
    int status = 0;
    if (waitpid(child, &status, 0) < 0) { perror("waitpid"); return 1; }
    fprintf(stderr, "trap_floor: %ld calls trapped\n", __atomic_load_n(&trapped, __ATOMIC_RELAXED));
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
