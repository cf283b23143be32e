//! Finding a partition by the image's disk id and its number, from /sys/class/block and the disks' MBRs.

use std::{
    io::Read,
    path::PathBuf,
    time::{Duration, Instant},
};

use crate::layout;

/// The device node of partition `partition` on the disk whose MBR carries `disk_id`.
pub fn find_partition(disk_id: u32, partition: u32) -> Option<PathBuf> {
    let entries = std::fs::read_dir("/sys/class/block").ok()?;
    for entry in entries.flatten() {
        let sys = entry.path();
        let number = std::fs::read_to_string(sys.join("partition")).ok();
        if number.and_then(|n| n.trim().parse::<u32>().ok()) != Some(partition) {
            continue;
        }
        // /sys/class/block/sda2 links to …/block/sda/sda2: the parent directory is the disk.
        let Some(disk) = std::fs::canonicalize(&sys).ok().and_then(|p| p.parent()?.file_name().map(|n| n.to_owned()))
        else {
            continue;
        };
        let mut sector = [0u8; 512];
        let read = std::fs::File::open(PathBuf::from("/dev").join(&disk)).and_then(|mut f| f.read_exact(&mut sector));
        if read.is_ok() && layout::mbr_disk_id(&sector) == Some(disk_id) {
            return Some(PathBuf::from("/dev").join(entry.file_name()));
        }
    }
    None
}

/// Waits (disk drivers probe in the background) for the partition named by `PARTUUID` text.
pub fn wait_for_partition(partuuid: &str, timeout: Duration) -> Result<PathBuf, String> {
    let (disk_id, partition) = layout::parse_partuuid(partuuid)
        .ok_or_else(|| format!("{partuuid:?} is not a partition id like 72747264-02"))?;
    let start = Instant::now();
    loop {
        if let Some(device) = find_partition(disk_id, partition) {
            return Ok(device);
        }
        if start.elapsed() > timeout {
            return Err(format!("no partition {partuuid} after {} s", timeout.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
