//! The target disk: found, written and read back. The first sector (the MBR, which makes the disk bootable) is
//! zeroed first and written last, so an install that stops halfway leaves a disk the BIOS skips, and the router
//! boots from the network again.

use std::{
    fs::{File, OpenOptions},
    io::{Read, Seek, SeekFrom, Write},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use routerd_init::layout;

use super::error::InstallError;

const SECTOR: usize = 512;
const CHUNK: usize = 1 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disk {
    /// `sda`
    pub name: String,
    pub size: u64,
    /// Its MBR carries the routerd image's disk id.
    pub has_routerd: bool,
    pub removable: bool,
}

impl Disk {
    pub fn device(&self) -> PathBuf {
        Path::new("/dev").join(&self.name)
    }

    fn describe(&self) -> String {
        format!(
            "{} ({:.1} GB{}{})",
            self.name,
            self.size as f64 / 1e9,
            if self.has_routerd { ", a routerd image" } else { "" },
            if self.removable { ", removable" } else { "" }
        )
    }
}

/// Block devices that can be a router's disk (not loop, RAM, optical or device-mapper devices).
pub fn candidates() -> Vec<Disk> {
    let Ok(entries) = std::fs::read_dir("/sys/block") else { return Vec::new() };
    let mut disks: Vec<Disk> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().to_string();
            if ["loop", "ram", "zram", "sr", "fd", "dm-", "md", "nbd"].iter().any(|p| name.starts_with(p)) {
                return None;
            }
            let read = |file: &str| std::fs::read_to_string(entry.path().join(file)).ok();
            let sectors: u64 = read("size")?.trim().parse().ok()?;
            if sectors == 0 {
                return None;
            }
            let removable = read("removable").is_some_and(|r| r.trim() == "1");
            let has_routerd = first_sector(&Path::new("/dev").join(&name))
                .and_then(|sector| layout::mbr_disk_id(&sector))
                .is_some_and(|id| id == layout::DISK_ID);
            Some(Disk { name, size: sectors * 512, has_routerd, removable })
        })
        .collect();
    disks.sort_by(|a, b| a.name.cmp(&b.name));
    disks
}

fn first_sector(device: &Path) -> Option<Vec<u8>> {
    let mut sector = vec![0u8; SECTOR];
    File::open(device).ok()?.read_exact(&mut sector).ok()?;
    Some(sector)
}

/// Waits until the disk drivers have found what they will find: the list stays the same for 3 s, or 60 s pass.
pub fn wait_for_candidates() -> Vec<Disk> {
    let end = Instant::now() + Duration::from_secs(60);
    let (mut last, mut stable_since) = (candidates(), Instant::now());
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(500));
        let now = candidates();
        if now != last {
            (last, stable_since) = (now, Instant::now());
        } else if !last.is_empty() && stable_since.elapsed() >= Duration::from_secs(3) {
            break;
        }
    }
    last
}

/// The disk to write: the one named, else the one that carries a routerd image, else the only non-removable
/// one. Never a guess between several.
pub fn choose(disks: &[Disk], named: Option<&str>, image_size: u64) -> Result<Disk, InstallError> {
    let listed = || disks.iter().map(Disk::describe).collect::<Vec<_>>().join(", ");
    let refused = |reason: String| Err(InstallError::Refused(reason));
    let chosen = if let Some(name) = named {
        match disks.iter().find(|d| d.name == name) {
            Some(disk) => disk.clone(),
            None => return refused(format!("no disk {name:?} here; the disks are: {}", listed())),
        }
    } else {
        let routerd: Vec<&Disk> = disks.iter().filter(|d| d.has_routerd).collect();
        let fixed: Vec<&Disk> = disks.iter().filter(|d| !d.removable).collect();
        match (routerd.as_slice(), fixed.as_slice()) {
            ([one], _) => (*one).clone(),
            ([], [one]) => (*one).clone(),
            ([], []) if disks.is_empty() => {
                return refused("no disk found (is its driver in the recovery initramfs?)".into());
            }
            _ => {
                return refused(format!(
                    "several disks could be the router's: {}; run routerd-recover with --disk NAME",
                    listed()
                ));
            }
        }
    };
    if chosen.size < image_size {
        return refused(format!(
            "the disk {} is smaller than the image ({:.1} GB): build the image with a smaller --size",
            chosen.describe(),
            image_size as f64 / 1e9
        ));
    }
    Ok(chosen)
}

/// Writes `size` bytes from `image` to the disk `path`, hashing them as they pass; the MBR last. `progress` gets
/// the bytes written so far. Returns the SHA-256 of what was received.
pub fn write(
    path: &Path,
    image: &mut dyn Read,
    size: u64,
    progress: &mut dyn FnMut(u64),
) -> Result<String, InstallError> {
    let failed = |what: &str, e: std::io::Error| InstallError::Disk(format!("{what} {}: {e}", path.display()));
    let mut device = OpenOptions::new().write(true).open(path).map_err(|e| failed("opening", e))?;
    // From here on the disk does not boot until the install is complete.
    device.write_all(&[0u8; SECTOR]).and_then(|()| device.sync_all()).map_err(|e| failed("clearing the MBR of", e))?;
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut first = vec![0u8; SECTOR];
    let mut buffer = vec![0u8; CHUNK];
    let mut written = 0u64;
    while written < size {
        let want = CHUNK.min((size - written) as usize);
        let n =
            image.read(&mut buffer[..want]).map_err(|e| InstallError::Network(format!("receiving the image: {e}")))?;
        if n == 0 {
            return Err(InstallError::Network(format!("the image ended after {written} of {size} bytes")));
        }
        let chunk = &buffer[..n];
        context.update(chunk);
        // Bytes of the first sector are kept for the end; the rest is written in place.
        let mut data = chunk;
        let mut at = written;
        if at < SECTOR as u64 {
            let keep = (SECTOR as u64 - at).min(n as u64) as usize;
            first[at as usize..at as usize + keep].copy_from_slice(&chunk[..keep]);
            data = &chunk[keep..];
            at += keep as u64;
        }
        if !data.is_empty() {
            device.seek(SeekFrom::Start(at)).map_err(|e| failed("seeking in", e))?;
            device.write_all(data).map_err(|e| failed("writing", e))?;
        }
        written += n as u64;
        progress(written);
    }
    device.sync_all().map_err(|e| failed("flushing", e))?;
    device.seek(SeekFrom::Start(0)).map_err(|e| failed("seeking in", e))?;
    device.write_all(&first).and_then(|()| device.sync_all()).map_err(|e| failed("writing the MBR of", e))?;
    Ok(routerd_proto::hex(context.finish().as_ref()))
}

/// `_IO(0x12, 97)` and `_IO(0x12, 95)` of <linux/fs.h>: drop the disk's cached blocks (so the read-back reads the
/// disk) and re-read its partition table.
const BLKFLSBUF: libc::c_ulong = 0x1261;
const BLKRRPART: libc::c_ulong = 0x125f;

fn ioctl(device: &File, request: libc::c_ulong) -> std::io::Result<()> {
    // SAFETY: both requests take no argument.
    if unsafe { libc::ioctl(device.as_raw_fd(), request, 0) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Reads the first `size` bytes of the disk `path` back and returns their SHA-256; then makes the kernel read the
/// new partition table.
pub fn read_back(path: &Path, size: u64, progress: &mut dyn FnMut(u64)) -> Result<String, InstallError> {
    let failed = |what: &str, e: std::io::Error| InstallError::Disk(format!("{what} {}: {e}", path.display()));
    let mut device = File::open(path).map_err(|e| failed("opening", e))?;
    ioctl(&device, BLKFLSBUF).map_err(|e| failed("dropping the cache of", e))?;
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buffer = vec![0u8; CHUNK];
    let mut read = 0u64;
    while read < size {
        let want = CHUNK.min((size - read) as usize);
        device.read_exact(&mut buffer[..want]).map_err(|e| failed("reading back", e))?;
        context.update(&buffer[..want]);
        read += want as u64;
        progress(read);
    }
    ioctl(&device, BLKRRPART).map_err(|e| failed("re-reading the partition table of", e))?;
    Ok(routerd_proto::hex(context.finish().as_ref()))
}

/// The device of partition `number` of `disk`: `sda4`, or `nvme0n1p4` / `mmcblk0p4` for names ending in a digit.
pub fn partition(disk: &Disk, number: u32) -> PathBuf {
    let separator = if disk.name.ends_with(|c: char| c.is_ascii_digit()) { "p" } else { "" };
    Path::new("/dev").join(format!("{}{separator}{number}", disk.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(name: &str, gb: u64, has_routerd: bool, removable: bool) -> Disk {
        Disk { name: name.into(), size: gb << 30, has_routerd, removable }
    }

    #[test]
    fn the_routerd_disk_or_the_only_fixed_one_is_chosen() {
        let usb = disk("sdb", 16, false, true);
        assert_eq!(choose(&[disk("sda", 16, false, false), usb.clone()], None, 1 << 30).expect("one").name, "sda");
        let two_fixed = [disk("sda", 16, false, false), disk("sdc", 32, true, false)];
        assert_eq!(choose(&two_fixed, None, 1 << 30).expect("routerd's").name, "sdc");
        assert_eq!(choose(&two_fixed, Some("sda"), 1 << 30).expect("named").name, "sda");
    }

    #[test]
    fn no_guess_between_several_and_no_disk_too_small() {
        let two = [disk("sda", 16, false, false), disk("sdb", 32, false, false)];
        let error = choose(&two, None, 1 << 30).expect_err("ambiguous").to_string();
        assert!(error.contains("several disks") && error.contains("--disk") && error.contains("sdb"), "{error}");
        assert!(error.contains("nothing was written"), "{error}");
        let error = choose(&two, Some("sdz"), 1 << 30).expect_err("unknown").to_string();
        assert!(error.contains("no disk \"sdz\""), "{error}");
        let error = choose(&[disk("sda", 1, false, false)], None, 2 << 30).expect_err("small").to_string();
        assert!(error.contains("smaller than the image"), "{error}");
        assert!(choose(&[], None, 1).expect_err("none").to_string().contains("no disk found"));
    }

    #[test]
    fn partitions_are_named_as_the_kernel_names_them() {
        assert_eq!(partition(&disk("sda", 1, false, false), 4), Path::new("/dev/sda4"));
        assert_eq!(partition(&disk("nvme0n1", 1, false, false), 4), Path::new("/dev/nvme0n1p4"));
        assert_eq!(partition(&disk("mmcblk0", 1, false, false), 2), Path::new("/dev/mmcblk0p2"));
    }

    #[test]
    fn the_mbr_is_written_last_and_the_hash_covers_everything() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("disk");
        std::fs::write(&path, vec![0xeeu8; 4 * CHUNK]).expect("old disk");
        let image: Vec<u8> = (0..(2 * CHUNK + 700)).map(|i| (i % 251) as u8).collect();
        let mut seen = Vec::new();
        let hash = write(&path, &mut &image[..], image.len() as u64, &mut |n| seen.push(n)).expect("written");
        assert_eq!(hash, routerd_proto::hex(ring::digest::digest(&ring::digest::SHA256, &image).as_ref()));
        let disk_bytes = std::fs::read(&path).expect("read");
        assert_eq!(&disk_bytes[..image.len()], &image[..]);
        assert_eq!(disk_bytes[image.len()], 0xee, "beyond the image the disk is untouched");
        assert_eq!(seen.last(), Some(&(image.len() as u64)));
    }

    #[test]
    fn a_short_image_fails_and_leaves_no_mbr() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("disk");
        std::fs::write(&path, vec![0xeeu8; CHUNK]).expect("old disk");
        let image = vec![1u8; 1000];
        let error = write(&path, &mut &image[..], 4000, &mut |_| {}).expect_err("short");
        assert!(error.to_string().contains("ended after 1000 of 4000"), "{error}");
        assert_eq!(&std::fs::read(&path).expect("read")[..SECTOR], &[0u8; SECTOR][..], "no bootable MBR");
    }
}
