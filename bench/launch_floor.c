/* launch_floor [per-entry] [ns] -- CMD [ARGS...]: the floor, on this machine, for
 * starting a workload the way the issue prescribes, without sandlock: a
 * private temp dir, a Landlock ruleset for the system view (/usr, /lib*,
 * /bin, /sbin, /etc, the rw devices, the temp dir), one fork, and in the
 * child capabilities dropped (as root), no_new_privs, landlock_restrict_self,
 * a seccomp filter with a user-notification listener handed to the parent,
 * and exec. The parent waits and removes the temp dir. With "per-entry",
 * /etc is walked and granted without its secrets (as sandlock must when
 * running as root, where file modes do not keep them out: every entry that
 * is not world-readable, at any depth, stays out, and the directories that
 * hold one are granted entry by entry); otherwise /etc is one rule (as
 * sandlock does when modes already hide the secrets). With "ns", the child
 * is cloned into a mount and a pid namespace of its own (and, when not
 * root, a user namespace mapping only the caller), makes its mounts
 * private and mounts its own /proc, as sandlock's workload gets. Written
 * in C with raw syscalls: no runtime, no allocator, no policy parsing. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common.h"
#include "notify.h"

/* Landlock ABI, spelled out so old kernel headers do not matter. */
struct ruleset_attr {
    uint64_t handled_access_fs, handled_access_net, scoped;
};
struct path_beneath {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));
#define RULE_PATH_BENEATH 1
#define FS_EXECUTE (1ULL << 0)
#define FS_WRITE_FILE (1ULL << 1)
#define FS_READ_FILE (1ULL << 2)
#define FS_READ_DIR (1ULL << 3)
#define FS_ALL ((1ULL << 16) - 1)
#define FS_FILE_RIGHTS (FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | (1ULL << 14) | (1ULL << 15))
#define FS_READ (FS_EXECUTE | FS_READ_FILE | FS_READ_DIR)
#define NET_ALL 3ULL
#define SCOPE_ALL 3ULL

static int ruleset = -1;

static void allow_fd(int fd, uint64_t access) {
    struct stat st;
    if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode)) access &= FS_FILE_RIGHTS;
    struct path_beneath pb = { .allowed_access = access, .parent_fd = fd };
    if (syscall(SYS_landlock_add_rule, ruleset, RULE_PATH_BENEATH, &pb, 0) != 0) {
        perror("landlock_add_rule");
        exit(125);
    }
}

static void allow_at(int dirfd, const char *path, uint64_t access) {
    int fd = openat(dirfd, path, O_PATH | O_CLOEXEC);
    if (fd < 0) return; /* absent: nothing to grant */
    allow_fd(fd, access);
    close(fd);
}

static int is_secret(const char *dir, const char *name) {
    static const char *const secrets[] = {
        "/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/sudoers",
        "/etc/sudoers.d", "/etc/ssh/ssh_host_*_key", "/etc/ssl/private",
        "/etc/security/opasswd", "/etc/krb5.keytab",
    };
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
        if (fnmatch(secrets[i], path, 0) == 0) return 1;
    return 0;
}

/* Walks `dir` (open as `dfd`) the way the system view must as root: an
 * entry is left out when it is a named secret, a file that is not
 * world-readable or a directory that is not world-searchable. Returns 1
 * when nothing below `dir` was left out (its parent grants it whole);
 * otherwise grants its harmless entries one by one (and listing on
 * `dir`) and returns 0. One listing per directory, one stat per file, as
 * sandlock's walk. */
static int walk(int dfd, const char *dir) {
    struct entry { char name[256]; int is_dir; };
    static struct entry granted[64][512];
    static int depth = -1;
    if (++depth >= 64) { depth--; return 0; }
    int n = 0, whole = 1;
    DIR *d = fdopendir(dup(dfd));
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || e->d_type == DT_LNK) continue;
        if (is_secret(dir, e->d_name)) { whole = 0; continue; }
        int is_dir = e->d_type == DT_DIR, ok;
        if (is_dir) {
            int cfd = openat(dfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            struct stat st;
            char sub[512];
            snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
            ok = cfd >= 0 && fstat(cfd, &st) == 0 && (st.st_mode & 01) && walk(cfd, sub);
            if (cfd >= 0) close(cfd);
        } else {
            struct stat st;
            ok = fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && (st.st_mode & 04);
        }
        if (!ok) { whole = 0; continue; }
        if (n < 512) {
            snprintf(granted[depth][n].name, sizeof granted[depth][n].name, "%s", e->d_name);
            granted[depth][n++].is_dir = is_dir;
        } else {
            whole = 0;
        }
    }
    if (d) closedir(d);
    if (!whole) {
        allow_fd(dfd, FS_READ_DIR);
        for (int k = 0; k < n; k++) allow_at(dfd, granted[depth][k].name, FS_READ);
    }
    depth--;
    return whole;
}

static void allow_entries(const char *dir) {
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return;
    if (walk(dfd, dir)) allow_fd(dfd, FS_READ);
    close(dfd);
}

static void drop_caps(void) {
    if (geteuid() != 0) return;
    for (int c = 0; c <= 63; c++) prctl(PR_CAPBSET_DROP, c, 0, 0, 0);
    struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof d);
    syscall(SYS_capset, &h, d);
}

/* Writes `text` to `path` (an id map or setgroups); 0 on success. */
static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* In the cloned child: become root of the user namespace (when one was
 * made), make every mount private and mount this pid namespace's /proc. */
static int settle_namespaces(uid_t uid, gid_t gid) {
    if (uid != 0) {
        char map[64];
        snprintf(map, sizeof map, "0 %u 1\n", (unsigned)uid);
        if (write_file("/proc/self/uid_map", map) != 0) return -1;
        if (write_file("/proc/self/setgroups", "deny") != 0) return -1;
        snprintf(map, sizeof map, "0 %u 1\n", (unsigned)gid);
        if (write_file("/proc/self/gid_map", map) != 0) return -1;
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) return -1;
    return mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
}

/* fork(), or with `ns` a clone into namespaces of the child's own. */
static pid_t spawn(int ns) {
    if (!ns) return fork();
    unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | SIGCHLD;
    if (geteuid() != 0) flags |= CLONE_NEWUSER;
    return (pid_t)syscall(SYS_clone, flags, NULL, NULL, NULL, NULL);
}

int main(int argc, char **argv) {
    int i = 1, per_entry = 0, ns = 0;
    for (; i < argc && strcmp(argv[i], "--"); i++) {
        if (!strcmp(argv[i], "per-entry")) per_entry = 1;
        else if (!strcmp(argv[i], "ns")) ns = 1;
        else break;
    }
    if (i >= argc || strcmp(argv[i], "--") || i + 1 >= argc) {
        fprintf(stderr, "usage: %s [per-entry] [ns] -- CMD [ARGS...]\n", argv[0]);
        return 2;
    }
    char **cmd = &argv[i + 1];

    char tmp[] = "/tmp/launch-floor.XXXXXX";
    if (!mkdtemp(tmp)) { perror("mkdtemp"); return 125; }
    struct ruleset_attr attr = { .handled_access_fs = FS_ALL, .handled_access_net = NET_ALL, .scoped = SCOPE_ALL };
    ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0);
    if (ruleset < 0) { perror("landlock_create_ruleset"); return 125; }
    static const char *const read_dirs[] = { "/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin" };
    for (size_t k = 0; k < sizeof read_dirs / sizeof read_dirs[0]; k++) allow_at(AT_FDCWD, read_dirs[k], FS_READ);
    if (per_entry) allow_entries("/etc");
    else allow_at(AT_FDCWD, "/etc", FS_READ);
    static const char *const devices[] = { "/dev/null", "/dev/zero", "/dev/urandom", "/dev/random", "/dev/tty" };
    for (size_t k = 0; k < sizeof devices / sizeof devices[0]; k++)
        allow_at(AT_FDCWD, devices[k], FS_READ | FS_WRITE_FILE);
    allow_at(AT_FDCWD, tmp, FS_ALL);

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) { perror("socketpair"); return 125; }
    uid_t uid = geteuid();
    gid_t gid = getegid();
    pid_t child = spawn(ns);
    if (child < 0) { perror(ns ? "clone" : "fork"); return 125; }
    if (child == 0) {
        if (ns && settle_namespaces(uid, gid) != 0) _exit(125);
        drop_caps();
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
            syscall(SYS_landlock_restrict_self, ruleset, 0) != 0) _exit(125);
        int lfd = trap_one(SYS_getppid);
        if (lfd < 0 || send_fd(sv[1], lfd) != 0) _exit(125);
        close(lfd);
        setenv("TMPDIR", tmp, 1);
        execvp(cmd[0], cmd);
        _exit(127);
    }
    close(ruleset);
    close(sv[1]);
    int lfd = recv_fd(sv[0]); /* kept open until the child exits */
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
    rmdir(tmp);
    if (lfd >= 0) close(lfd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
