//! The appliance disk: an MBR with a fixed disk id, so partitions are found by that id and their number (what
//! Linux calls PARTUUID `DISKID-NN`), never by a device name such as /dev/sda that depends on the controller.

/// The MBR disk id of every routerd image ("rtrd" in ASCII).
pub const DISK_ID: u32 = 0x7274_7264;

/// FAT: syslinux, its configuration, and a kernel and initramfs per root slot.
pub const BOOT_PARTITION: u32 = 1;
/// The root file system slots (read-only squashfs), A and B.
pub const ROOT_A_PARTITION: u32 = 2;
pub const ROOT_B_PARTITION: u32 = 3;
/// ext4 with all state: the same for both slots.
pub const PERM_PARTITION: u32 = 4;

/// `PARTUUID=7274726d-02` for partition 2.
pub fn partuuid(partition: u32) -> String {
    format!("{DISK_ID:08x}-{partition:02x}")
}

/// The disk id in an MBR (bytes 440..444, little-endian), if `sector` is one (ends in 0x55 0xAA).
pub fn mbr_disk_id(sector: &[u8]) -> Option<u32> {
    if sector.len() < 512 || sector[510..512] != [0x55, 0xaa] {
        return None;
    }
    Some(u32::from_le_bytes([sector[440], sector[441], sector[442], sector[443]]))
}

/// Parses `DISKID-NN` (as written by [`partuuid`]) into its disk id and partition number.
pub fn parse_partuuid(text: &str) -> Option<(u32, u32)> {
    let (disk, partition) = text.split_once('-')?;
    Some((u32::from_str_radix(disk, 16).ok()?, u32::from_str_radix(partition, 16).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partuuids_round_trip_and_mbrs_are_recognised() {
        assert_eq!(partuuid(ROOT_B_PARTITION), "72747264-03");
        assert_eq!(parse_partuuid(&partuuid(PERM_PARTITION)), Some((DISK_ID, PERM_PARTITION)));
        assert_eq!(parse_partuuid("nonsense"), None);
        let mut sector = vec![0u8; 512];
        sector[440..444].copy_from_slice(&DISK_ID.to_le_bytes());
        assert_eq!(mbr_disk_id(&sector), None, "no boot signature");
        sector[510] = 0x55;
        sector[511] = 0xaa;
        assert_eq!(mbr_disk_id(&sector), Some(DISK_ID));
    }
}
