//! The few libc calls the runtime needs, in one place: the only module of
//! the SDK allowed `unsafe` code, each block with its SAFETY note.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;

/// Locks all current and future memory (what the server asks for unless it
/// runs with `disable_mlock`).
pub(super) fn lock_memory() -> io::Result<()> {
    // SAFETY: mlockall has no memory-safety preconditions.
    if unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Ignores SIGINT and asks the kernel for SIGTERM when the parent dies.
pub(super) fn die_with_parent() {
    // SAFETY: plain syscalls with constant arguments.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
    }
}

/// The id of group `name`, `None` if there is no such group.
pub(super) fn group_id(name: &CString) -> Option<u32> {
    // SAFETY: getgrnam reads a NUL-terminated name and returns a pointer
    // into static storage, read immediately.
    let entry = unsafe { libc::getgrnam(name.as_ptr()) };
    if entry.is_null() {
        return None;
    }
    // SAFETY: checked non-null above.
    Some(unsafe { (*entry).gr_gid })
}

/// Registers `socket` with the async reactor for `interest` only.
pub(super) fn watch(
    socket: std::os::unix::net::UnixStream,
    interest: tokio::io::Interest,
) -> io::Result<tokio::io::unix::AsyncFd<std::os::unix::net::UnixStream>> {
    // SAFETY: the AsyncFd owns the socket, and a std UnixStream owns its
    // descriptor and returns that same one from every as_raw_fd() until it
    // is dropped, which the AsyncFd does only after deregistering it.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(socket, interest) }
        .map_err(|e| e.into_parts().1)
}
