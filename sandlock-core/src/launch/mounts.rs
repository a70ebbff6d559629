//! Filesystems mounted in the sandbox's mount namespace besides its
//! /proc: the size-capped tmpfs over the private directory (`--disk`)
//! and the copy-on-write overlays (`--cow`).
//!
//! Owns their mount options, formatted before the fork, and the raw
//! mounts made by the helper's child inside the namespace (after every
//! mount there became a slave). Must never allocate in that child, and
//! never mount an overlay from descriptors opened outside the namespace:
//! overlayfs clones its upper layer's mount, which the kernel allows only
//! for a mount of the caller's own namespace.

use std::ffi::CString;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A C string of `path`, or EINVAL for one with a NUL.
fn c_path(path: &Path) -> std::io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))
}

/// A size-capped tmpfs over the sandbox's private directory (`--disk`),
/// formatted before the fork: where, and its mount options.
#[derive(Debug, Clone)]
pub struct Tmpfs {
    target: CString,
    options: CString,
}

impl Tmpfs {
    /// A tmpfs of at most `bytes` on `target`, mode 0700.
    pub fn new(target: &Path, bytes: u64) -> std::io::Result<Tmpfs> {
        Ok(Tmpfs {
            target: c_path(target)?,
            options: CString::new(format!("size={bytes},mode=0700"))
                .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?,
        })
    }
}

/// A copy-on-write overlay over one host directory (`--cow`): the host's
/// directory is the lower layer and the mount point, the layer's `upper`
/// and `work` directories take the writes.
///
/// Paths with a comma or colon cannot be spelled in overlayfs's options
/// safely, so each directory is opened in the namespace and named by
/// `/proc/self/fd/N`, with N one of three descriptor numbers the
/// supervisor reserved (they are free in the mounting child's copy of the
/// descriptor table only because the supervisor holds them).
#[derive(Debug, Clone)]
pub struct Overlay {
    /// Host directory, upper, work.
    paths: [CString; 3],
    /// The reserved descriptor numbers, in the same order.
    slots: [RawFd; 3],
    /// Device and inode the host directory had when the layer was made:
    /// the directory opened in the namespace must still be that one.
    lower_id: (u64, u64),
    /// `/proc/self/fd/LOWER`: the mount point.
    target: CString,
    options: CString,
}

impl Overlay {
    /// An overlay of `upper` (with overlayfs's scratch `work`) over
    /// `dir`, reached through the descriptor numbers `slots`. `user`: the
    /// mount is made in a user namespace, where overlayfs keeps its
    /// whiteouts' and opaque directories' marks in `user.` xattrs.
    pub fn new(
        dir: (&Path, (u64, u64)),
        upper: &Path,
        work: &Path,
        slots: [RawFd; 3],
        user: bool,
    ) -> std::io::Result<Overlay> {
        let (dir, lower_id) = dir;
        let [l, u, w] = slots;
        // No redirects followed, no metadata-only copies, no index, no
        // inode-number tricks: every copied-up file is whole in the upper
        // directory, so the changes can be read back without overlayfs.
        // redirect_dir=off would clash with userxattr; nofollow does not.
        let mut options = format!(
            "lowerdir=/proc/self/fd/{l},upperdir=/proc/self/fd/{u},workdir=/proc/self/fd/{w},\
             redirect_dir=nofollow,metacopy=off,index=off,xino=off"
        );
        if user {
            options.push_str(",userxattr");
        }
        let bad = |_| std::io::Error::from_raw_os_error(libc::EINVAL);
        Ok(Overlay {
            paths: [c_path(dir)?, c_path(upper)?, c_path(work)?],
            slots,
            lower_id,
            target: CString::new(format!("/proc/self/fd/{l}")).map_err(bad)?,
            options: CString::new(options).map_err(bad)?,
        })
    }

    /// In the namespace: opens the three directories onto their slots and
    /// mounts the overlay. False on any failure.
    fn mount(&self) -> bool {
        for (path, &slot) in self.paths.iter().zip(&self.slots) {
            // SAFETY: open with a C string prepared before the fork.
            let fd = unsafe {
                libc::open(
                    path.as_ptr(),
                    libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                )
            };
            if fd < 0 {
                return false;
            }
            // SAFETY: moves our own new descriptor onto a number of this
            // process's private descriptor table.
            let moved = unsafe { libc::dup3(fd, slot, libc::O_CLOEXEC) };
            // SAFETY: closes the descriptor opened just above.
            unsafe { libc::close(fd) };
            if moved != slot {
                return false;
            }
        }
        // SAFETY: stat is plain data; fstat writes it for our descriptor.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::fstat(self.slots[0], &mut st) } != 0
            || (st.st_dev, st.st_ino) != self.lower_id
        {
            return false;
        }
        // SAFETY: mount with C strings prepared before the fork.
        let r = unsafe {
            libc::mount(
                c"sandlock".as_ptr(),
                self.target.as_ptr(),
                c"overlay".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                self.options.as_ptr().cast(),
            )
        };
        r == 0
    }
}

/// What the helper's child mounts besides /proc.
#[derive(Debug, Clone, Default)]
pub struct Mounts {
    /// Over the private directory.
    pub tmpfs: Option<Tmpfs>,
    /// One per `--cow` directory.
    pub overlays: Vec<Overlay>,
    /// Directories covered with an empty read-only tmpfs once /proc is
    /// mounted (see [`crate::Ground`]).
    pub conceal: Vec<CString>,
}

impl Mounts {
    /// True when there is anything to mount.
    pub fn any(&self) -> bool {
        self.tmpfs.is_some() || !self.overlays.is_empty() || !self.conceal.is_empty()
    }

    /// In the namespace: mounts everything. 0, or the exit code that
    /// names what failed (4: the tmpfs, 5: an overlay).
    pub(super) fn mount(&self) -> libc::c_int {
        if let Some(t) = &self.tmpfs {
            // SAFETY: mount with C strings prepared before the fork.
            let r = unsafe {
                libc::mount(
                    c"sandlock".as_ptr(),
                    t.target.as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    t.options.as_ptr().cast(),
                )
            };
            if r != 0 {
                return 4;
            }
        }
        if !self.overlays.iter().all(Overlay::mount) {
            return 5;
        }
        0
    }
}

/// Binds `source` on `path`; the errno on failure.
pub(super) fn bind(source: &std::ffi::CStr, path: &std::ffi::CStr) -> Result<(), i32> {
    // SAFETY: mount with C strings that outlive the call.
    let r = unsafe {
        libc::mount(
            source.as_ptr(),
            path.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(super::errno())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_options_name_descriptors_not_paths() {
        let o = Overlay::new(
            (Path::new("/home/u/a,b:c"), (1, 2)),
            Path::new("/s/0/upper"),
            Path::new("/s/0/work"),
            [7, 8, 9],
            true,
        )
        .unwrap();
        let opts = o.options.to_str().unwrap();
        assert!(opts.starts_with(
            "lowerdir=/proc/self/fd/7,upperdir=/proc/self/fd/8,workdir=/proc/self/fd/9,"
        ));
        assert!(opts.ends_with(",userxattr"), "{opts}");
        assert!(!opts.contains("/home/u"), "{opts}");
        assert_eq!(o.target.to_str().unwrap(), "/proc/self/fd/7");
        let root = Overlay::new(
            (Path::new("/a"), (1, 2)),
            Path::new("/b"),
            Path::new("/c"),
            [3, 4, 5],
            false,
        )
        .unwrap();
        assert!(!root.options.to_str().unwrap().contains("userxattr"));
        assert!(Overlay::new(
            (Path::new("/a\0b"), (1, 2)),
            Path::new("/b"),
            Path::new("/c"),
            [3, 4, 5],
            false
        )
        .is_err());
    }
}
