//! The backup: checked the way `rtrctl backup restore` checks one before the disk is touched, then written into
//! the new `/perm`.

use std::path::Path;

use routerd::backup::{BackupError, Entry, Limits, archive, restore};

use routerd_init::sys;

use super::error::InstallError;

/// The backup's files, once it passed every check a restore makes (format, limits, and `/perm` loaded as routerd
/// would load it, in `scratch`).
pub fn check(bytes: &[u8], scratch: &Path) -> Result<Vec<Entry>, BackupError> {
    let entries = archive::read(bytes, Limits::default())?;
    restore::check_entries(scratch, &entries)?;
    Ok(entries)
}

/// Mounts the installed image's `/perm` partition and replaces its contents with `entries`.
pub fn restore(partition: &Path, entries: &[Entry]) -> Result<usize, InstallError> {
    let mount_point = Path::new("/mnt/perm");
    std::fs::create_dir_all(mount_point).map_err(|e| InstallError::Perm(format!("creating /mnt/perm: {e}")))?;
    sys::mount(&partition.to_string_lossy(), mount_point, "ext4", 0, "")
        .map_err(|e| InstallError::Perm(format!("mounting {} (ext4): {e}", partition.display())))?;
    let restored = restore::restore(mount_point, entries).map_err(|e| InstallError::Perm(e.to_string()));
    sys::sync();
    let unmounted = sys::unmount(mount_point, 0);
    let count = restored?;
    unmounted.map_err(|e| InstallError::Perm(format!("unmounting {}: {e}", partition.display())))?;
    Ok(count)
}
