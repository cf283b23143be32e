//! Writing a checked bundle where the inactive slot boots from: its root into the slot's partition, its kernel
//! and initramfs onto the boot partition under the slot's names; each read back and hashed. And the boot
//! configuration (syslinux.cfg), whose default changes by rewriting one sector in place.

use std::{
    fs::{File, OpenOptions},
    io::{Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use routerd_init::layout::{self, Slot};

use super::bundle::Checked;

/// Where routerd mounts the boot partition.
pub const BOOT_MOUNT: &str = "/boot";

fn device(partition: u32) -> Result<PathBuf, String> {
    routerd_init::block::find_partition(layout::DISK_ID, partition)
        .ok_or_else(|| format!("no partition {} on this machine", layout::partuuid(partition)))
}

/// Mounts the boot partition at [`BOOT_MOUNT`] unless it is mounted there already.
pub fn mount_boot() -> Result<PathBuf, String> {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    if mounts.lines().any(|l| l.split_whitespace().nth(1) == Some(BOOT_MOUNT)) {
        return Ok(PathBuf::from(BOOT_MOUNT));
    }
    let device = device(layout::BOOT_PARTITION)?;
    std::fs::create_dir_all(BOOT_MOUNT).map_err(|e| format!("creating {BOOT_MOUNT}: {e}"))?;
    mount(&device, Path::new(BOOT_MOUNT)).map_err(|e| format!("mounting {} on {BOOT_MOUNT}: {e}", device.display()))?;
    Ok(PathBuf::from(BOOT_MOUNT))
}

fn mount(device: &Path, target: &Path) -> std::io::Result<()> {
    crate::sys::files::mount(device, target, "vfat", libc::MS_NOSUID | libc::MS_NODEV)
}

/// Copies `length` bytes at `offset` of the bundle into `out`, and returns their SHA-256.
fn copy_part(bundle: &Path, offset: u64, length: u64, out: &mut File) -> Result<String, String> {
    let mut input = File::open(bundle).map_err(|e| format!("reading the bundle: {e}"))?;
    input.seek(SeekFrom::Start(offset)).map_err(|e| format!("reading the bundle: {e}"))?;
    let mut input = input.take(length);
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = input.read(&mut buffer).map_err(|e| format!("reading the bundle: {e}"))?;
        if n == 0 {
            break;
        }
        digest.update(&buffer[..n]);
        out.write_all(&buffer[..n]).map_err(|e| format!("writing: {e}"))?;
    }
    out.sync_all().map_err(|e| format!("flushing: {e}"))?;
    Ok(routerd_proto::hex(digest.finish().as_ref()))
}

/// The SHA-256 of the first `length` bytes of `path`, read from the device (the page cache dropped first).
fn read_back(path: &Path, length: u64) -> Result<String, String> {
    let file = File::open(path).map_err(|e| format!("reading {} back: {e}", path.display()))?;
    crate::sys::files::drop_cached(&file);
    let mut input = file.take(length);
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = input.read(&mut buffer).map_err(|e| format!("reading {} back: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        digest.update(&buffer[..n]);
    }
    Ok(routerd_proto::hex(digest.finish().as_ref()))
}

fn part<'a>(bundle: &'a Checked, name: &str) -> Result<(u64, &'a super::bundle::Part), String> {
    let offset = *bundle.offsets.get(name).ok_or(format!("{name} is not in the bundle"))?;
    let part = bundle.manifest.parts.get(name).ok_or(format!("{name} is not in the manifest"))?;
    Ok((offset, part))
}

/// Writes the bundle's root into `slot`'s partition and its kernel and initramfs onto the boot partition (under
/// a temporary name first), each read back and checked against the manifest.
pub fn install(bundle: &Checked, slot: Slot, boot: &Path) -> Result<(), String> {
    let (offset, root) = part(bundle, "root.squashfs")?;
    let device = device(slot.partition())?;
    let mut out =
        OpenOptions::new().write(true).open(&device).map_err(|e| format!("opening {}: {e}", device.display()))?;
    let capacity = out.seek(SeekFrom::End(0)).map_err(|e| format!("sizing {}: {e}", device.display()))?;
    if root.size > capacity {
        return Err(format!("the root ({} bytes) does not fit slot {} ({capacity} bytes)", root.size, slot.name()));
    }
    out.seek(SeekFrom::Start(0)).map_err(|e| format!("seeking {}: {e}", device.display()))?;
    copy_part(&bundle.path, offset, root.size, &mut out)?;
    drop(out);
    let back = read_back(&device, root.size)?;
    if back != root.sha256 {
        return Err(format!(
            "slot {} reads back as {back}, not {}: the disk did not keep what was written",
            slot.name(),
            root.sha256
        ));
    }
    for (name, file) in [("vmlinuz", slot.kernel()), ("initrd", slot.initramfs())] {
        let (offset, wanted) = part(bundle, name)?;
        let (temp, path) = (boot.join(format!("{file}.new")), boot.join(&file));
        let mut out = File::create(&temp).map_err(|e| format!("creating {}: {e}", temp.display()))?;
        copy_part(&bundle.path, offset, wanted.size, &mut out)?;
        drop(out);
        std::fs::rename(&temp, &path).map_err(|e| format!("renaming {}: {e}", temp.display()))?;
        let back = read_back(&path, wanted.size)?;
        if back != wanted.sha256 {
            return Err(format!("{} reads back as {back}, not {}", path.display(), wanted.sha256));
        }
    }
    sync_dir(boot);
    Ok(())
}

fn sync_dir(dir: &Path) {
    if let Ok(file) = File::open(dir) {
        let _ = file.sync_all();
    }
}

/// Makes `default` the slot the machine boots from. The two configurations differ in one byte (`DEFAULT a` or
/// `DEFAULT b`), so the switch rewrites that byte's sector in place: a disk writes a sector whole or not at all,
/// so a power cut leaves the old default or the new one. A rename on vfat gives no such promise (it updates two
/// directory entries), so it is only the fallback, for a file that differs in more than one sector (another
/// hostname, a file from an older version).
pub fn set_boot_default(boot: &Path, default: Slot, hostname: &str) -> Result<(), String> {
    let path = boot.join("syslinux.cfg");
    let wanted = layout::syslinux_cfg(default, hostname).into_bytes();
    let current = std::fs::read(&path).unwrap_or_default();
    if current == wanted {
        return Ok(());
    }
    if let Some(changed) = changed_within_one_sector(&current, &wanted) {
        let mut file =
            OpenOptions::new().write(true).open(&path).map_err(|e| format!("opening {}: {e}", path.display()))?;
        file.seek(SeekFrom::Start(changed.start as u64))
            .and_then(|_| file.write_all(&wanted[changed]))
            .and_then(|_| file.sync_all())
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        return Ok(());
    }
    let temp = boot.join("syslinux.new");
    let mut file = File::create(&temp).map_err(|e| format!("creating {}: {e}", temp.display()))?;
    file.write_all(&wanted).map_err(|e| format!("writing {}: {e}", temp.display()))?;
    file.sync_all().map_err(|e| format!("flushing {}: {e}", temp.display()))?;
    drop(file);
    std::fs::rename(&temp, &path).map_err(|e| format!("replacing {}: {e}", path.display()))?;
    sync_dir(boot);
    Ok(())
}

const SECTOR: usize = 512;

/// The bytes that differ between two files of the same length, when they all lie in one sector.
fn changed_within_one_sector(current: &[u8], wanted: &[u8]) -> Option<std::ops::Range<usize>> {
    if current.len() != wanted.len() {
        return None;
    }
    let differs = |i: &usize| current[*i] != wanted[*i];
    let first = (0..wanted.len()).find(differs)?;
    let last = (0..wanted.len()).rev().find(differs)?;
    (first / SECTOR == last / SECTOR).then_some(first..last + 1)
}

/// The slot syslinux boots by default.
pub fn boot_default(boot: &Path) -> Option<Slot> {
    layout::syslinux_default(&std::fs::read_to_string(boot.join("syslinux.cfg")).ok()?)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn the_default_changes_in_place_and_a_new_hostname_replaces_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("syslinux.cfg");
        std::fs::write(&path, layout::syslinux_cfg(Slot::A, "router")).expect("write");
        let inode = std::fs::metadata(&path).expect("metadata").ino();

        set_boot_default(dir.path(), Slot::B, "router").expect("to slot b");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), layout::syslinux_cfg(Slot::B, "router"));
        assert_eq!(boot_default(dir.path()), Some(Slot::B));
        assert_eq!(std::fs::metadata(&path).expect("metadata").ino(), inode, "rewritten in place");

        set_boot_default(dir.path(), Slot::A, "gateway").expect("to slot a, renamed");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), layout::syslinux_cfg(Slot::A, "gateway"));
        assert_ne!(std::fs::metadata(&path).expect("metadata").ino(), inode, "replaced by a rename");
        assert!(!dir.path().join("syslinux.new").exists());
    }

    #[test]
    fn a_missing_or_damaged_configuration_is_written_whole() {
        let dir = tempfile::tempdir().expect("temp dir");
        set_boot_default(dir.path(), Slot::B, "router").expect("missing");
        assert_eq!(boot_default(dir.path()), Some(Slot::B));
        let path = dir.path().join("syslinux.cfg");
        std::fs::write(&path, vec![0u8; layout::syslinux_cfg(Slot::A, "router").len()]).expect("zeros");
        set_boot_default(dir.path(), Slot::A, "router").expect("zeros of the same length");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), layout::syslinux_cfg(Slot::A, "router"));
    }

    #[test]
    fn changes_in_two_sectors_are_not_one_sector_change() {
        let current = vec![0u8; 2 * SECTOR];
        let mut wanted = current.clone();
        wanted[10] = 1;
        assert_eq!(changed_within_one_sector(&current, &wanted), Some(10..11));
        wanted[SECTOR + 1] = 1;
        assert_eq!(changed_within_one_sector(&current, &wanted), None);
        assert_eq!(changed_within_one_sector(&current, &current[1..]), None);
    }
}
