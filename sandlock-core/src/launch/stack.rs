//! Stacks for children cloned with `CLONE_VM | CLONE_VFORK` (the workload
//! until its exec, the helper that mounts the workload's /proc): sharing
//! the parent's memory spares copying its page tables, which on these
//! machines costs more than the child's whole work. Owns the mapping;
//! never hands it to a child that outlives the parent's wait.

/// A stack for a child that shares our memory (`CLONE_VM`) until it
/// execs or exits: an anonymous mapping with a guard page at the bottom,
/// unmapped when dropped.
pub(super) struct ChildStack {
    base: *mut libc::c_void,
}

const STACK_SIZE: usize = 256 * 1024;

impl ChildStack {
    pub(super) fn new() -> std::io::Result<ChildStack> {
        // SAFETY: a fresh private anonymous mapping; nothing aliases it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                STACK_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the lowest page of our own mapping becomes the guard.
        unsafe { libc::mprotect(base, 4096, libc::PROT_NONE) };
        Ok(ChildStack { base })
    }

    /// The initial stack pointer (stacks grow down), 16-byte aligned.
    pub(super) fn top(&self) -> *mut libc::c_void {
        // SAFETY: one past the end of our mapping, as clone expects.
        unsafe { self.base.cast::<u8>().add(STACK_SIZE).cast() }
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: our own mapping; the child that ran on it has exec'd or
        // exited (CLONE_VFORK returned), so nothing uses it any more.
        unsafe { libc::munmap(self.base, STACK_SIZE) };
    }
}
