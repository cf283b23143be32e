//! File-system calls std does not have.

use std::{ffi::CString, fs::File, io, os::fd::AsRawFd, os::unix::ffi::OsStrExt, path::Path};

/// `path` for the C library; a path with a NUL byte is an error.
fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)
}

/// Swaps two paths atomically (`renameat2` with `RENAME_EXCHANGE`): both must exist.
pub fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    let (a, b) = (c_path(a)?, c_path(b)?);
    // SAFETY: two valid NUL-terminated paths that outlive the call; renameat2 only reads them.
    let rc = unsafe { libc::renameat2(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), libc::RENAME_EXCHANGE) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Blocks until this process holds an exclusive advisory lock (`flock`) on `file`; it ends when the file is
/// closed.
pub fn lock_exclusive(file: &File) -> io::Result<()> {
    // SAFETY: flock on a descriptor `file` owns and keeps open across the call; no memory is passed.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Mounts the file system of type `fstype` on `device` at `target`, with `flags` (`MS_…`) and no options.
pub fn mount(device: &Path, target: &Path, fstype: &str, flags: libc::c_ulong) -> io::Result<()> {
    let fstype = CString::new(fstype).map_err(io::Error::other)?;
    let (source, target) = (c_path(device)?, c_path(target)?);
    // SAFETY: NUL-terminated strings that outlive the call; no data argument.
    let result = unsafe { libc::mount(source.as_ptr(), target.as_ptr(), fstype.as_ptr(), flags, std::ptr::null()) };
    if result == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Tells the kernel that `file`'s cached pages are not needed any more, so that what is read next comes from
/// the device (a read-back check after a write). Only advice: failing is harmless.
pub fn drop_cached(file: &File) {
    // SAFETY: advice on a descriptor `file` keeps open across the call; no memory is passed.
    unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_swaps_two_directories_and_needs_both() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir(&a).expect("a");
        std::fs::write(a.join("marker"), "a").expect("marker");
        assert!(exchange(&a, &b).is_err(), "b does not exist");
        std::fs::create_dir(&b).expect("b");
        exchange(&a, &b).expect("exchange");
        assert!(b.join("marker").exists() && !a.join("marker").exists());
    }

    #[test]
    fn a_lock_is_held_until_the_file_closes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(".lock");
        let first = File::create(&path).expect("create");
        lock_exclusive(&first).expect("lock");
        // A second descriptor cannot take it meanwhile (flock locks belong to the open file description).
        let second = File::open(&path).expect("open");
        // SAFETY: a non-blocking attempt on a descriptor we own, open across the call.
        let busy = unsafe { libc::flock(second.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        assert_eq!(busy, -1);
        drop(first);
        lock_exclusive(&second).expect("free once the first closed");
    }
}
