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

/// A root slot: its partition, and its kernel and initramfs on the boot partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub fn parse(name: &str) -> Option<Slot> {
        match name {
            "a" => Some(Slot::A),
            "b" => Some(Slot::B),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }

    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    pub fn partition(self) -> u32 {
        match self {
            Slot::A => ROOT_A_PARTITION,
            Slot::B => ROOT_B_PARTITION,
        }
    }

    /// The kernel's file on the boot partition.
    pub fn kernel(self) -> String {
        format!("vmlinuz-{}", self.name())
    }

    pub fn initramfs(self) -> String {
        format!("initrd-{}", self.name())
    }

    /// The kernel command line that boots this slot. `trial` (seconds) marks a system update on trial: init
    /// arms the watchdog and goes back to the boot default unless routerd confirms the update in time.
    pub fn cmdline(self, hostname: &str, trial: Option<u64>) -> String {
        let mut line = format!(
            "console=ttyS0,115200 panic=10 {WATCHDOG_PARAMETERS} routerd.slot={} routerd.root={} routerd.perm={} \
             routerd.hostname={hostname}",
            self.name(),
            partuuid(self.partition()),
            partuuid(PERM_PARTITION)
        );
        if let Some(seconds) = trial {
            line.push_str(&format!(" routerd.trial={seconds}"));
        }
        line
    }
}

/// syslinux.cfg: both slots, `default` booted (the other one only by a kexec on trial).
pub fn syslinux_cfg(default: Slot, hostname: &str) -> String {
    let mut text = format!("SERIAL 0 115200\nPROMPT 0\nTIMEOUT 0\nDEFAULT {}\n", default.name());
    for slot in [Slot::A, Slot::B] {
        text.push_str(&format!(
            "LABEL {}\n  KERNEL /{}\n  INITRD /{}\n  APPEND {}\n",
            slot.name(),
            slot.kernel(),
            slot.initramfs(),
            slot.cmdline(hostname, None)
        ));
    }
    text
}

/// The DEFAULT of a syslinux.cfg.
pub fn syslinux_default(cfg: &str) -> Option<Slot> {
    cfg.lines().find_map(|l| l.trim().strip_prefix("DEFAULT ")).and_then(|name| Slot::parse(name.trim()))
}

/// For the watchdog core module (init passes `module.key=value` on to the module, as modprobe does): a running
/// watchdog keeps running through the kexec into a system update (the kernel stops watchdogs on a restart
/// otherwise), and the new kernel does not feed it by itself before init takes it over, so a system that hangs
/// before it is reset.
pub const WATCHDOG_PARAMETERS: &str = "watchdog.stop_on_reboot=0 watchdog.handle_boot_enabled=0";

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

    #[test]
    fn syslinux_boots_the_default_slot_and_knows_both() {
        let cfg = syslinux_cfg(Slot::B, "router");
        assert_eq!(syslinux_default(&cfg), Some(Slot::B));
        assert!(cfg.contains("KERNEL /vmlinuz-a") && cfg.contains("INITRD /initrd-b"));
        assert!(cfg.contains("routerd.slot=b routerd.root=72747264-03 routerd.perm=72747264-04"));
        assert!(Slot::A.cmdline("r", Some(300)).ends_with("routerd.trial=300"));
        assert_eq!(Slot::A.other(), Slot::B);
    }
}
