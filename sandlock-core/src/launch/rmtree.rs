//! Removing the private temp dir from the reaper, which may not allocate:
//! it is a fork of the supervisor, and after a fork only async-signal-safe
//! work is safe. Raw `openat`/`getdents64`/`unlinkat` into a buffer the
//! supervisor allocated before the fork. Never follows a symlink; gives up
//! quietly on what it cannot remove (a depth over [`MAX_DEPTH`], an entry it
//! has no permission for).

use std::ffi::CStr;

/// Deepest directory nesting removed.
const MAX_DEPTH: usize = 128;
/// Longest entry name (NAME_MAX) plus its NUL.
const NAME_CAP: usize = 256;

/// Removes the directory `path` and everything below it, using `scratch`
/// for directory listings.
pub(super) fn remove_tree(path: &CStr, scratch: &mut [u8]) {
    remove_at(libc::AT_FDCWD, path, scratch, 0);
}

fn remove_at(parent: libc::c_int, name: &CStr, scratch: &mut [u8], depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    // SAFETY: valid C string; O_NOFOLLOW never enters a symlinked directory.
    let dir = unsafe {
        libc::openat(
            parent,
            name.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if dir < 0 {
        return;
    }
    // Each pass lists from the start and removes what it can; a pass that
    // descends into a subdirectory reuses `scratch`, so it starts over.
    for _ in 0..1_000_000 {
        if !one_pass(dir, scratch, depth) {
            break;
        }
    }
    // SAFETY: closing the fd opened above; then removing the now empty
    // directory by name.
    unsafe {
        libc::close(dir);
        libc::unlinkat(parent, name.as_ptr(), libc::AT_REMOVEDIR);
    }
}

/// One listing of `dir`: unlinks every non-directory, descends into the
/// first directory. True when something was removed and another pass may
/// find more.
fn one_pass(dir: libc::c_int, scratch: &mut [u8], depth: usize) -> bool {
    // SAFETY: rewinding and listing our own directory fd into `scratch`.
    let n = unsafe {
        libc::lseek(dir, 0, libc::SEEK_SET);
        libc::syscall(
            libc::SYS_getdents64,
            dir,
            scratch.as_mut_ptr(),
            scratch.len(),
        )
    };
    if n <= 0 {
        return false;
    }
    let n = n as usize;
    let mut progress = false;
    let mut off = 0;
    while off + 19 < n {
        // struct linux_dirent64: ino u64, off i64, reclen u16, type u8, name.
        let reclen = u16::from_ne_bytes([scratch[off + 16], scratch[off + 17]]) as usize;
        if reclen == 0 || off + reclen > n {
            return false;
        }
        let raw = &scratch[off + 19..off + reclen];
        let len = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        off += reclen;
        if len == 0 || len >= NAME_CAP || raw[..len] == *b"." || raw[..len] == *b".." {
            continue;
        }
        let mut name = [0u8; NAME_CAP];
        name[..len].copy_from_slice(&raw[..len]);
        let name = CStr::from_bytes_until_nul(&name).expect("NUL-terminated");
        // SAFETY: unlinking an entry of our own directory fd by name.
        if unsafe { libc::unlinkat(dir, name.as_ptr(), 0) } == 0 {
            progress = true;
            continue;
        }
        if std::io::Error::last_os_error().raw_os_error() == Some(libc::EISDIR) {
            remove_at(dir, name, scratch, depth + 1);
            // `scratch` now holds the subdirectory's listing: start over,
            // unless the subdirectory could not be removed.
            let gone = crate::sys::fstatat(dir, name, libc::AT_SYMLINK_NOFOLLOW).is_err();
            return gone;
        }
    }
    progress
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn removes_nested_trees_and_not_symlink_targets() {
        let base = std::env::temp_dir().join(format!("sandlock-rmtree-{}", std::process::id()));
        let outside =
            std::env::temp_dir().join(format!("sandlock-rmtree-out-{}", std::process::id()));
        std::fs::create_dir_all(base.join("a/b/c")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"x").unwrap();
        for i in 0..300 {
            std::fs::write(base.join(format!("a/f{i}")), b"x").unwrap();
        }
        std::fs::write(base.join("a/b/c/deep"), b"x").unwrap();
        std::os::unix::fs::symlink(&outside, base.join("link")).unwrap();
        let path = std::ffi::CString::new(base.as_os_str().as_bytes()).unwrap();
        let mut scratch = vec![0u8; 4096];
        remove_tree(&path, &mut scratch);
        assert!(!base.exists());
        assert!(outside.join("keep").exists(), "a symlink's target survives");
        std::fs::remove_dir_all(&outside).unwrap();
    }
}
