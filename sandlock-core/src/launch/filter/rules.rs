//! The seccomp filter's rules, written with libseccomp.
//!
//! This file is compiled twice: by the build script, which runs it once per
//! [`FilterSpec`] and bakes the resulting BPF into the library (a filter is
//! a pure function of the spec, so nothing is left to do at run time, and
//! the binary does not load libseccomp at all), and by the unit tests, which
//! rebuild every filter and check it matches what was baked.
//!
//! It must only use `std`, `libc` and `libseccomp`.

use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};

use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};

use super::spec::{
    FilterSpec, ATTR_IOCTLS, LAST_KNOWN_SYSCALL, OPEN_NOT_A_READ, PRIVILEGE_BITS, REFUSED_IOCTLS,
};

type Result<T> = std::result::Result<T, String>;

/// Syscalls denied with EPERM for every workload.
const DENIED: &[&str] = &[
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "mount",
    "umount2",
    "pivot_root",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsmount",
    "fsconfig",
    "fspick",
    "mount_setattr",
    "unshare",
    "setns",
    "keyctl",
    "add_key",
    "request_key",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "open_by_handle_at",
];

/// clone(2) flags that create namespaces. CLONE_NEWTIME is absent on
/// purpose: for clone(2) that bit is part of the exit signal.
const NS_FLAGS: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
];

const LOW32: u64 = 0xffff_ffff;

fn sys(name: &str) -> Result<ScmpSyscall> {
    ScmpSyscall::from_name(name).map_err(|e| format!("seccomp: unknown syscall {name}: {e}"))
}

fn err<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("seccomp: {what}: {e}")
}

fn bit_set(arg: u32, bit: u64) -> ScmpArgCompare {
    ScmpArgCompare::new(arg, ScmpCompareOp::MaskedEqual(bit), bit)
}

/// The calls a learning run traps besides the usual ones (the supervisor's
/// `learn` module reads them).
pub const LEARNED: [&str; 19] = [
    "open",
    "openat",
    "creat",
    "execve",
    "execveat",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "unlink",
    "unlinkat",
    "rmdir",
    "rename",
    "renameat",
    "renameat2",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
];

/// Builds the filter for `spec` and returns it as raw BPF bytes (an array
/// of `struct sock_filter`).
pub fn build(spec: FilterSpec) -> Result<Vec<u8>> {
    // Pin the API level so the program does not depend on the kernel of the
    // machine that builds it: level 5 has USER_NOTIF and KILL_PROCESS.
    libseccomp::set_api(5).map_err(err("api level"))?;
    let mut ctx = ScmpFilterContext::new(ScmpAction::Allow).map_err(err("init"))?;
    // A foreign architecture (and, through libseccomp's x86_64 handling,
    // an x32 syscall number) kills the process: never guess.
    ctx.set_act_badarch(ScmpAction::KillProcess)
        .map_err(err("badarch"))?;
    let eperm = ScmpAction::Errno(libc::EPERM);
    for name in DENIED {
        ctx.add_rule(eperm, sys(name)?).map_err(err(name))?;
    }
    for &flag in NS_FLAGS {
        ctx.add_rule_conditional(eperm, sys("clone")?, &[bit_set(0, flag)])
            .map_err(err("clone"))?;
    }
    // Pushing bytes into the input queue of an inherited terminal would let
    // the workload type commands into the shell that started sandlock;
    // changing its line discipline would leave that terminal dead.
    for req in [libc::TIOCSTI, libc::TIOCLINUX, libc::TIOCSETD] {
        ctx.add_rule_conditional(
            eperm,
            sys("ioctl")?,
            &[ScmpArgCompare::new(
                1,
                ScmpCompareOp::MaskedEqual(LOW32),
                req,
            )],
        )
        .map_err(err("ioctl"))?;
    }
    // clone3 passes its flags in memory the filter cannot read; ENOSYS
    // makes libc fall back to clone(2), whose flags it can. openat2 keeps
    // its flags and mode in memory too: a check of them could be undone
    // by another thread before the kernel reads them again, and a
    // supervisor cannot open on the workload's behalf under its Landlock
    // domain. ENOSYS makes callers fall back to openat, which the filter
    // reads from registers.
    for name in ["clone3", "openat2"] {
        ctx.add_rule(ScmpAction::Errno(libc::ENOSYS), sys(name)?)
            .map_err(err(name))?;
    }
    for req in REFUSED_IOCTLS {
        ctx.add_rule_conditional(eperm, sys("ioctl")?, &[low32_eq(1, req)])
            .map_err(err("ioctl"))?;
    }
    // A lease, which a read-only fd of a file its uid owns is enough for,
    // stalls every host process that opens that file for writing until
    // the lease breaks (45 s by default): no workload needs one.
    ctx.add_rule_conditional(
        eperm,
        sys("fcntl")?,
        &[low32_eq(1, libc::F_SETLEASE as u32)],
    )
    .map_err(err("fcntl"))?;

    socket_rules(&mut ctx, spec)?;
    route_rules(&mut ctx)?;
    other_process_rules(&mut ctx)?;
    metadata_rules(&mut ctx)?;
    creation_mode_rules(&mut ctx)?;

    if spec.trap_open {
        open_rules(&mut ctx)?;
    }
    if spec.trap_stat {
        stat_rules(&mut ctx)?;
    }
    if spec.learn {
        learn_rules(&mut ctx)?;
    }
    // Every connect and every send that names a destination is the
    // supervisor's: an inet one is egress, and a unix one may name a host
    // service's socket file (Landlock has no right for connecting to one).
    // sendmsg and sendmmsg keep the destination in memory, so all of them
    // trap: a unix datagram socket can address any socket file with them.
    for name in ["connect", "sendmsg", "sendmmsg"] {
        ctx.add_rule(ScmpAction::Notify, sys(name)?)
            .map_err(err(name))?;
    }
    // sendto: only an explicit destination can reach a new address.
    ctx.add_rule_conditional(
        ScmpAction::Notify,
        sys("sendto")?,
        &[ScmpArgCompare::new(4, ScmpCompareOp::NotEqual, 0)],
    )
    .map_err(err("sendto"))?;
    if spec.inet {
        for name in ["bind", "listen"] {
            ctx.add_rule(ScmpAction::Notify, sys(name)?)
                .map_err(err(name))?;
        }
    }
    Ok(refuse_unknown_syscalls(export(&ctx)?))
}

/// Socket options that choose where a packet goes besides its destination
/// address: IPv4 source routes (IP_OPTIONS) and IPv6 routing headers
/// (a segment routing header sends a datagram to an address the
/// allowlist never saw). The level and name are registers.
fn route_rules(ctx: &mut ScmpFilterContext) -> Result<()> {
    const IPV6_2292PKTOPTIONS: u32 = 6;
    const IPV6_2292RTHDR: u32 = 5;
    const IPV6_RTHDR: u32 = 57;
    let eperm = ScmpAction::Errno(libc::EPERM);
    let options = [
        (libc::IPPROTO_IP as u32, libc::IP_OPTIONS as u32),
        (libc::IPPROTO_IPV6 as u32, IPV6_RTHDR),
        (libc::IPPROTO_IPV6 as u32, IPV6_2292RTHDR),
        (libc::IPPROTO_IPV6 as u32, IPV6_2292PKTOPTIONS),
    ];
    for (level, name) in options {
        ctx.add_rule_conditional(
            eperm,
            sys("setsockopt")?,
            &[low32_eq(1, level), low32_eq(2, name)],
        )
        .map_err(err("setsockopt"))?;
    }
    Ok(())
}

/// Calls that act on another process by pid: its rlimits (RLIMIT_CPU 0
/// kills it), its scheduling, its I/O priority, its memory placement.
/// Landlock scopes signals but none of these, so any of them naming a
/// process other than the caller goes to the supervisor, which lets it
/// through only for a process of the sandbox (see `supervisor/others.rs`).
/// A target of 0 (the caller itself) runs untrapped; a whole process
/// group or user (setpriority, ioprio_set) is refused.
fn other_process_rules(ctx: &mut ScmpFilterContext) -> Result<()> {
    // The comparisons are on all 64 bits: garbage above a pid of 0 traps,
    // and the supervisor reads the int the kernel reads.
    for name in [
        "prlimit64",
        "sched_setaffinity",
        "sched_setscheduler",
        "sched_setparam",
        "sched_setattr",
        "migrate_pages",
        "move_pages",
    ] {
        ctx.add_rule_conditional(
            ScmpAction::Notify,
            sys(name)?,
            &[ScmpArgCompare::new(0, ScmpCompareOp::NotEqual, 0)],
        )
        .map_err(err(name))?;
    }
    const PRIO_PROCESS: u64 = 0;
    const IOPRIO_WHO_PROCESS: u64 = 1;
    for (name, process) in [
        ("setpriority", PRIO_PROCESS),
        ("ioprio_set", IOPRIO_WHO_PROCESS),
    ] {
        // A group or a user: refused in the supervisor with a reason.
        ctx.add_rule_conditional(
            ScmpAction::Notify,
            sys(name)?,
            &[ScmpArgCompare::new(0, ScmpCompareOp::NotEqual, process)],
        )
        .map_err(err(name))?;
        ctx.add_rule_conditional(
            ScmpAction::Notify,
            sys(name)?,
            &[
                ScmpArgCompare::new(0, ScmpCompareOp::Equal, process),
                ScmpArgCompare::new(1, ScmpCompareOp::NotEqual, 0),
            ],
        )
        .map_err(err(name))?;
    }
    Ok(())
}

fn low32_eq(arg: u32, value: u32) -> ScmpArgCompare {
    ScmpArgCompare::new(arg, ScmpCompareOp::MaskedEqual(LOW32), u64::from(value))
}

/// Calls that change a file's mode, owner, times, extended attributes,
/// attribute flags or (by path) size. Landlock has no right for the first
/// five, and checks truncation only from ABI 3, so every one goes to the
/// supervisor, which performs it only on files under a write grant (see
/// `supervisor/meta.rs`). `chmod`, `chown`, `lchown`, `utime` and
/// `utimes` exist on x86_64 only.
fn metadata_rules(ctx: &mut ScmpFilterContext) -> Result<()> {
    for name in [
        "chmod",
        "fchmod",
        "fchmodat",
        "fchmodat2",
        "chown",
        "fchown",
        "lchown",
        "fchownat",
        "utime",
        "utimes",
        "futimesat",
        "utimensat",
        "setxattr",
        "lsetxattr",
        "fsetxattr",
        "removexattr",
        "lremovexattr",
        "fremovexattr",
        "truncate",
    ] {
        ctx.add_rule(ScmpAction::Notify, sys(name)?)
            .map_err(err(name))?;
    }
    // A read-only open with O_TRUNC truncates (the kernel asks for write
    // permission, Landlock before ABI 3 only for read): the supervisor
    // lets it through only where Landlock checks truncation.
    let trunc = libc::O_TRUNC as u64;
    let accmode = libc::O_ACCMODE as u64;
    for (name, flags_arg) in [("open", 1), ("openat", 2)] {
        ctx.add_rule_conditional(
            ScmpAction::Notify,
            sys(name)?,
            &[ScmpArgCompare::new(
                flags_arg,
                ScmpCompareOp::MaskedEqual(trunc | accmode),
                trunc,
            )],
        )
        .map_err(err(name))?;
    }
    for req in ATTR_IOCTLS {
        ctx.add_rule_conditional(ScmpAction::Notify, sys("ioctl")?, &[low32_eq(1, req)])
            .map_err(err("ioctl"))?;
    }
    Ok(())
}

/// Creating a file whose mode carries setuid or setgid: open and openat
/// with O_CREAT or O_TMPFILE, creat, mknod and mknodat. The mode is a
/// register, so the verdict cannot be raced; the call traps only so the
/// supervisor can say why it refuses (mkdir needs no rule: the kernel
/// drops both bits from a requested directory mode).
fn creation_mode_rules(ctx: &mut ScmpFilterContext) -> Result<()> {
    const TMPFILE: u64 = 0o2000_0000; // __O_TMPFILE, without O_DIRECTORY
    let bits = [libc::S_ISUID as u64, libc::S_ISGID as u64];
    debug_assert_eq!(bits[0] | bits[1], u64::from(PRIVILEGE_BITS));
    for (name, flags_arg, mode_arg) in [("open", 1, 2), ("openat", 2, 3)] {
        for create in [libc::O_CREAT as u64, TMPFILE] {
            for bit in bits {
                ctx.add_rule_conditional(
                    ScmpAction::Notify,
                    sys(name)?,
                    &[bit_set(flags_arg, create), bit_set(mode_arg, bit)],
                )
                .map_err(err(name))?;
            }
        }
    }
    for (name, mode_arg) in [("creat", 1), ("mknod", 1), ("mknodat", 2)] {
        for bit in bits {
            ctx.add_rule_conditional(ScmpAction::Notify, sys(name)?, &[bit_set(mode_arg, bit)])
                .map_err(err(name))?;
        }
    }
    Ok(())
}

/// Puts a guard in front of `bpf`: on x86_64, a syscall number above
/// [`LAST_KNOWN_SYSCALL`] (and below the x32 bit, which the program itself
/// kills) fails with ENOSYS. Classic BPF jumps are relative, so the
/// program after the guard is unchanged.
fn refuse_unknown_syscalls(bpf: Vec<u8>) -> Vec<u8> {
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    const X32_BIT: u32 = 0x4000_0000;
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const JGE_K: u16 = 0x35;
    const JGT_K: u16 = 0x25;
    const RET_K: u16 = 0x06;
    let enosys = 0x0005_0000 | libc::ENOSYS as u32; // SECCOMP_RET_ERRNO
                                                    // (code, jt, jf, k); a jump skips that many instructions.
    let guard: [(u16, u8, u8, u32); 6] = [
        (LD_W_ABS, 0, 0, 4),               // A = arch
        (JEQ_K, 0, 4, AUDIT_ARCH_X86_64),  // not x86_64: on to the program
        (LD_W_ABS, 0, 0, 0),               // A = nr
        (JGE_K, 2, 0, X32_BIT),            // x32: on to the program
        (JGT_K, 0, 1, LAST_KNOWN_SYSCALL), // unknown: refuse
        (RET_K, 0, 0, enosys),
    ];
    let mut out = Vec::with_capacity(guard.len() * 8 + bpf.len());
    for (code, jt, jf, k) in guard {
        out.extend_from_slice(&code.to_ne_bytes());
        out.push(jt);
        out.push(jf);
        out.extend_from_slice(&k.to_ne_bytes());
    }
    out.extend_from_slice(&bpf);
    out
}

/// Opens that may read a virtual file: open and openat only when no flag
/// of [`OPEN_NOT_A_READ`] is set (a directory listing or a write never
/// costs a trap; openat2 is refused outright). The kernel reads the flags
/// as an `int`: the mask covers the low 32 bits only, so garbage in the
/// upper half changes nothing.
fn open_rules(ctx: &mut ScmpFilterContext) -> Result<()> {
    let not_a_read = OPEN_NOT_A_READ as u32 as u64;
    for (name, flags_arg) in [("open", 1), ("openat", 2)] {
        notify_unless_any(ctx, name, flags_arg, not_a_read)?;
    }
    Ok(())
}

/// `--learn`: every call that names a file Landlock checks traps, so the
/// supervisor can record it (and answers CONTINUE: the widened Landlock
/// ruleset decides).
fn learn_rules(ctx: &mut ScmpFilterContext) -> Result<()> {
    for name in LEARNED {
        ctx.add_rule(ScmpAction::Notify, sys(name)?)
            .map_err(err(name))?;
    }
    Ok(())
}

/// The lookups by path that must find a file existing only in the
/// sandbox: the stat family (OpenSSL stats `<hash>.0` before opening it),
/// the access family (`[ -e f ]`, `os.path.exists`) and the extended
/// attribute reads `ls -l` makes (SELinux label, ACL). `stat`, `lstat`
/// and `access` exist on x86_64 only; libseccomp skips them elsewhere.
///
/// newfstatat and statx with AT_EMPTY_PATH are not trapped: that is how
/// glibc spells fstat(fd) and Rust's `File::metadata`, far too hot to
/// send to the supervisor, and they name no path. The cost is that the
/// rare spelling "a path, and AT_EMPTY_PATH too" does not find a
/// sandbox-only file.
fn stat_rules(ctx: &mut ScmpFilterContext) -> Result<()> {
    for name in [
        "stat",
        "lstat",
        "access",
        "faccessat",
        "faccessat2",
        "getxattr",
        "lgetxattr",
        "listxattr",
        "llistxattr",
    ] {
        ctx.add_rule(ScmpAction::Notify, sys(name)?)
            .map_err(err(name))?;
    }
    let empty_path = libc::AT_EMPTY_PATH as u64;
    for (name, flags_arg) in [("newfstatat", 3), ("statx", 2)] {
        notify_unless_any(ctx, name, flags_arg, empty_path)?;
    }
    Ok(())
}

/// Traps `name` unless argument `flags_arg` has any bit of `mask` set.
fn notify_unless_any(
    ctx: &mut ScmpFilterContext,
    name: &str,
    flags_arg: u32,
    mask: u64,
) -> Result<()> {
    let none_set = ScmpArgCompare::new(flags_arg, ScmpCompareOp::MaskedEqual(mask), 0);
    ctx.add_rule_conditional(ScmpAction::Notify, sys(name)?, &[none_set])
        .map_err(err(name))?;
    Ok(())
}

/// A condition on one argument: equality, a masked equality (the mask
/// spans all 64 bits, so garbage in the upper half never matches), or a
/// lower bound (which garbage in the upper half always meets).
#[derive(Clone, Copy)]
enum Cond {
    Eq(u64),
    Masked(u64, u64),
    AtLeast(u64),
}

impl Cond {
    fn on(self, arg: u32) -> ScmpArgCompare {
        match self {
            Cond::Eq(v) => ScmpArgCompare::new(arg, ScmpCompareOp::Equal, v),
            Cond::Masked(mask, v) => ScmpArgCompare::new(arg, ScmpCompareOp::MaskedEqual(mask), v),
            Cond::AtLeast(v) => ScmpArgCompare::new(arg, ScmpCompareOp::GreaterEqual, v),
        }
    }
}

/// Families other than unix, inet and inet6: 0, 3, 4-7, 8-9, 11 and up.
const OTHER_FAMILIES: &[Cond] = &[
    Cond::Eq(0),
    Cond::Eq(3),
    Cond::Masked(!3, 4),
    Cond::Masked(!1, 8),
    Cond::AtLeast(11),
];
/// Socket types (low nibble) other than SOCK_STREAM.
const NOT_STREAM: &[Cond] = &[
    Cond::Masked(0xf, 0),
    Cond::Masked(0x2, 0x2),
    Cond::Masked(0x4, 0x4),
    Cond::Masked(0x8, 0x8),
];
/// Socket types other than SOCK_STREAM and SOCK_DGRAM.
const NOT_STREAM_OR_DGRAM: &[Cond] = &[
    Cond::Masked(0xf, 0),
    Cond::Masked(0xf, 3),
    Cond::Masked(0x4, 0x4),
    Cond::Masked(0x8, 0x8),
];
/// Protocols other than 0 and IPPROTO_TCP (6).
const NOT_TCP: &[Cond] = &[
    Cond::Eq(1),
    Cond::Masked(!1, 2),
    Cond::Masked(!1, 4),
    Cond::Eq(7),
    Cond::AtLeast(8),
];
/// Protocols other than 0 and IPPROTO_UDP (17).
const NOT_UDP: &[Cond] = &[
    Cond::Eq(1),
    Cond::Masked(!1, 2),
    Cond::Masked(!3, 4),
    Cond::Masked(!7, 8),
    Cond::Eq(16),
    Cond::AtLeast(18),
];

/// socket(2): unix sockets are free. Without a network policy every other
/// family goes to the supervisor, which denies it with an explanation.
/// With one, the plain TCP sockets (and UDP ones when a udp:// rule
/// exists) that the policy can use are created without a round trip, and
/// every other (family, type, protocol) goes to the supervisor. libseccomp
/// takes one comparison per argument per rule, so each "anything but"
/// set is spelled as a few masked patterns that together cover it.
fn socket_rules(ctx: &mut ScmpFilterContext, spec: FilterSpec) -> Result<()> {
    let socket = sys("socket")?;
    let mut add = |conds: &[ScmpArgCompare]| {
        ctx.add_rule_conditional(ScmpAction::Notify, socket, conds)
            .map(drop)
            .map_err(err("socket"))
    };
    if !spec.inet {
        return add(&[ScmpArgCompare::new(
            0,
            ScmpCompareOp::NotEqual,
            libc::AF_UNIX as u64,
        )]);
    }
    for fam in OTHER_FAMILIES {
        add(&[fam.on(0)])?;
    }
    let types = if spec.udp {
        NOT_STREAM_OR_DGRAM
    } else {
        NOT_STREAM
    };
    for fam in [libc::AF_INET as u64, libc::AF_INET6 as u64] {
        for ty in types {
            add(&[Cond::Eq(fam).on(0), ty.on(1)])?;
        }
        for proto in NOT_TCP {
            add(&[
                Cond::Eq(fam).on(0),
                Cond::Masked(0xf, libc::SOCK_STREAM as u64).on(1),
                proto.on(2),
            ])?;
        }
        if spec.udp {
            for proto in NOT_UDP {
                add(&[
                    Cond::Eq(fam).on(0),
                    Cond::Masked(0xf, libc::SOCK_DGRAM as u64).on(1),
                    proto.on(2),
                ])?;
            }
        }
    }
    Ok(())
}

fn export(ctx: &ScmpFilterContext) -> Result<Vec<u8>> {
    // SAFETY: valid C string and flag.
    let fd = unsafe { libc::memfd_create(c"sandlock-bpf".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(format!(
            "seccomp: memfd: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: fresh fd, owned from here on.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    ctx.export_bpf(file.as_fd()).map_err(err("export"))?;
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0)).map_err(err("export"))?;
    file.read_to_end(&mut bytes).map_err(err("export"))?;
    if bytes.is_empty() || bytes.len() % 8 != 0 {
        return Err("seccomp: export: bad BPF length".into());
    }
    Ok(bytes)
}
