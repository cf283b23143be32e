//! Files only their owner may read: identities (a private key) and backups (the router's CA key, its leases).

use std::{
    fs::{self, OpenOptions, Permissions},
    io::{self, Write},
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

/// Writes `bytes` to `path` with mode 0600, through a temporary file renamed over it, so an interrupted write
/// never leaves half a file and an existing file (whatever its mode) is replaced by a private one. Refuses when
/// the file system does not keep the file private (a FAT stick, some network mounts).
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let temp = temporary(path);
    // A leftover of an interrupted run may be readable by others; never write into it.
    match fs::remove_file(&temp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp)?;
        file.set_permissions(Permissions::from_mode(0o600))?;
        let mode = file.metadata()?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(io::Error::other(format!(
                "this file system does not keep the file private (mode {mode:o} instead of 600); \
                 write it somewhere with Unix permissions"
            )));
        }
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

fn temporary(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".partial");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn a_new_file_an_overwritten_one_and_a_stale_partial_all_end_up_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("router.backup.tar.gz");
        write_private(&path, b"first").expect("written");
        assert_eq!((mode(&path), fs::read(&path).expect("read")), (0o600, b"first".to_vec()));

        fs::set_permissions(&path, Permissions::from_mode(0o644)).expect("chmod");
        let stale = temporary(&path);
        fs::write(&stale, b"old").expect("stale partial");
        fs::set_permissions(&stale, Permissions::from_mode(0o666)).expect("chmod");
        write_private(&path, b"second").expect("written");
        assert_eq!((mode(&path), fs::read(&path).expect("read")), (0o600, b"second".to_vec()));
        assert!(!stale.exists(), "the temporary file is gone");
    }

    #[test]
    fn a_directory_in_the_way_is_an_error_and_nothing_is_left_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("taken");
        fs::create_dir(&path).expect("mkdir");
        fs::write(path.join("inside"), b"x").expect("write");
        assert!(write_private(&path, b"data").is_err());
        assert!(!temporary(&path).exists());
    }
}
