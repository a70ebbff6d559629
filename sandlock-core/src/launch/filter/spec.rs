//! What the seccomp filter must trap: four facts about the policy. Shared
//! by the build script (which compiles one filter per combination) and the
//! library (which picks one at run time).

/// Open flags that make an open something other than a plain read: a
/// write, a create, a directory or an `O_PATH` handle. No virtual file is
/// ever served for them (Landlock alone decides them), so the filter lets
/// open and openat with any of these bits run without a trap, and the
/// supervisor answers openat2 (whose flags live in memory) the same way.
pub const OPEN_NOT_A_READ: i32 = libc::O_WRONLY
    | libc::O_RDWR
    | libc::O_CREAT
    | libc::O_TRUNC
    | libc::O_PATH
    | libc::O_DIRECTORY;

/// The highest syscall number (x86_64) this filter was written for:
/// `mseal`, Linux 6.10. Every number above it (the `*xattrat` family,
/// `file_setattr`, and whatever later kernels add) fails with ENOSYS, so a
/// syscall that touches the host in a way Landlock does not govern cannot
/// appear under a sandbox written before it existed; libc and runtimes
/// fall back to the older calls, which the filter knows.
#[allow(dead_code)] // the build script and the tests use it
pub const LAST_KNOWN_SYSCALL: u32 = 462;

/// `ioctl` requests that change a file's attributes (`chattr` flags, the
/// XFS/ext4 fsxattr, the inode generation). Landlock governs none of them
/// on regular files, so they are decided like chmod (see
/// `supervisor/meta.rs`).
pub const ATTR_IOCTLS: [u32; 7] = [
    0x4008_6602, // FS_IOC_SETFLAGS
    0x4004_6602, // FS_IOC32_SETFLAGS
    0x4008_7602, // FS_IOC_SETVERSION
    0x4004_7602, // FS_IOC32_SETVERSION
    0x4008_6604, // EXT4_IOC_SETVERSION, ext4's alias of the above
    0x4004_6604, // EXT4_IOC32_SETVERSION
    0x401c_5820, // FS_IOC_FSSETXATTR
];

/// `ioctl` requests that change a file or directory for good and that no
/// workload needs: fs-verity (the file becomes immutable), an encryption
/// policy on a directory, a btrfs subvolume made read-only. Refused with
/// EPERM.
#[allow(dead_code)] // the build script and the tests use it
pub const REFUSED_IOCTLS: [u32; 3] = [
    0x4080_6685, // FS_IOC_ENABLE_VERITY
    0x800c_6613, // FS_IOC_SET_ENCRYPTION_POLICY
    0x4008_941a, // BTRFS_IOC_SUBVOL_SETFLAGS (read-only flag, owner only)
];

/// Mode bits a file the workload makes or changes may never carry: on
/// exec they grant the file owner's or group's privileges.
pub const PRIVILEGE_BITS: u32 = libc::S_ISUID | libc::S_ISGID;

/// What the filter must trap, decided from the policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilterSpec {
    /// Trap open/openat/openat2 (a virtual file exists).
    pub trap_open: bool,
    /// Inet sockets may exist: trap connect, bind, listen and addressed sends.
    pub inet: bool,
    /// UDP sockets may exist: trap every sendmsg/sendmmsg, since their
    /// destination lives in memory the filter cannot read.
    pub udp: bool,
    /// A file exists only inside the sandbox: trap the stat and access
    /// families by path, so a lookup of it finds it.
    pub trap_stat: bool,
    /// `--learn`: trap every call that names a file Landlock would check
    /// (every open, exec, and each change of a directory's entries), so
    /// the learner sees it. Only with every other trap on: a learning run
    /// has the network and the proxy.
    pub learn: bool,
}

impl FilterSpec {
    /// How many combinations there are: every mix of the four traps, and
    /// the learning filter.
    pub const COUNT: usize = 17;

    /// Every combination, in the order [`FilterSpec::index`] numbers them.
    #[allow(dead_code)] // used by the build script and the tests
    pub const ALL: [FilterSpec; Self::COUNT] = {
        let mut all = [FilterSpec {
            trap_open: true,
            inet: true,
            udp: true,
            trap_stat: true,
            learn: true,
        }; Self::COUNT];
        let mut i = 0;
        while i < Self::COUNT - 1 {
            all[i] = FilterSpec {
                trap_open: i & 1 != 0,
                inet: i & 2 != 0,
                udp: i & 4 != 0,
                trap_stat: i & 8 != 0,
                learn: false,
            };
            i += 1;
        }
        all
    };

    /// This combination's position in [`FilterSpec::ALL`]; a learning run
    /// gets the learning filter whatever else it asks.
    pub fn index(self) -> usize {
        if self.learn {
            return Self::COUNT - 1;
        }
        self.trap_open as usize
            | (self.inet as usize) << 1
            | (self.udp as usize) << 2
            | (self.trap_stat as usize) << 3
    }
}
