//! Socket options socket2 does not have.

use std::os::fd::AsRawFd;

/// Attaches `filter` to a socket (the kernel checks the program here).
pub fn attach_filter(socket: std::os::fd::BorrowedFd<'_>, filter: &[libc::sock_filter]) -> std::io::Result<()> {
    let length = u16::try_from(filter.len()).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let program = libc::sock_fprog { len: length, filter: filter.as_ptr().cast_mut() };
    // SAFETY: the program outlives the call; the kernel copies it.
    let attached = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&program as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if attached == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}
