//! The disk image: an MBR (syslinux's boot code, the fixed disk id) with four partitions: boot (FAT, syslinux),
//! root slots A and B, and /perm (ext4). Built in a file with sfdisk, mtools, syslinux's mtools installer and
//! mke2fs -d: no root and no loop mounts.

use std::{io::Write, path::Path};

use routerd_init::layout;

use crate::{
    error::{ImageError, IoContext},
    tools,
};

const MIB: u64 = 1 << 20;
const SECTOR: u64 = 512;
/// The first partition starts here (the usual 1 MiB alignment).
const FIRST: u64 = MIB;
pub const BOOT_SIZE: u64 = 64 * MIB;
const MIN_PERM: u64 = 64 * MIB;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub size: u64,
    pub slot: u64,
}

impl Layout {
    /// Root slots of 512 MiB from a 2 GiB disk on, else 256 MiB; /perm gets the rest.
    pub fn for_size(size: u64) -> Result<Layout, ImageError> {
        let slot = if size >= 2048 * MIB { 512 * MIB } else { 256 * MIB };
        let layout = Layout { size, slot };
        let needed = FIRST + BOOT_SIZE + 2 * 256 * MIB + MIN_PERM;
        if size < needed {
            return Err(ImageError::Invalid(format!(
                "--size {} MiB is too small: an image needs at least {} MiB (boot 64 MiB, two root slots of 256 MiB, \
                 /perm at least 64 MiB)",
                size / MIB,
                needed / MIB
            )));
        }
        Ok(layout)
    }

    /// Start and length in bytes of partition `n` (1-4).
    pub fn partition(&self, n: u32) -> (u64, u64) {
        let boot = (FIRST, BOOT_SIZE);
        let a = (boot.0 + boot.1, self.slot);
        let b = (a.0 + a.1, self.slot);
        let perm = (b.0 + b.1, self.size - (b.0 + b.1));
        match n {
            layout::BOOT_PARTITION => boot,
            layout::ROOT_A_PARTITION => a,
            layout::ROOT_B_PARTITION => b,
            _ => perm,
        }
    }

    fn sfdisk_script(&self) -> String {
        let mut script = format!("label: dos\nlabel-id: 0x{:08x}\nunit: sectors\n", layout::DISK_ID);
        for n in 1..=4 {
            let (start, length) = self.partition(n);
            let (kind, flags) = if n == layout::BOOT_PARTITION { ("c", ", bootable") } else { ("83", "") };
            script.push_str(&format!("start={}, size={}, type={kind}{flags}\n", start / SECTOR, length / SECTOR));
        }
        script
    }
}

/// What goes into a new image.
pub struct Parts<'a> {
    pub kernel: &'a Path,
    pub initramfs: &'a Path,
    pub root: &'a Path,
    pub perm: &'a Path,
    pub syslinux_cfg: String,
}

/// Writes the image into `out` (a new file), step by step, saying what it does.
pub fn assemble(out: &Path, layout: Layout, parts: &Parts) -> Result<(), ImageError> {
    let image = out.display().to_string();
    let file = std::fs::File::create(out).context(|| format!("creating {image}"))?;
    file.set_len(layout.size).context(|| format!("sizing {image}"))?;
    drop(file);

    partition(&image, &layout)?;
    // syslinux's MBR boot code (440 bytes: the disk id and the partition table after it stay).
    let mbr = std::fs::read(tools::SYSLINUX_MBR.0).context(|| format!("reading {}", tools::SYSLINUX_MBR.0))?;
    write_at(out, 0, mbr.get(..440).ok_or(ImageError::Invalid("mbr.bin is shorter than 440 bytes".into()))?)?;

    make_boot(&image, &layout, parts)?;

    let (root_start, root_length) = layout.partition(layout::ROOT_A_PARTITION);
    let root = std::fs::read(parts.root).context(|| format!("reading {}", parts.root.display()))?;
    if root.len() as u64 > root_length {
        return Err(ImageError::Invalid(format!(
            "the root file system ({} MiB) does not fit a root slot ({} MiB): use a larger --size",
            root.len() as u64 / MIB,
            root_length / MIB
        )));
    }
    write_at(out, root_start, &root)?;

    let (perm_start, perm_length) = layout.partition(layout::PERM_PARTITION);
    tools::run(
        "mke2fs",
        &[
            "-q",
            "-F",
            "-t",
            "ext4",
            "-L",
            "perm",
            "-d",
            &parts.perm.display().to_string(),
            "-E",
            &format!("offset={perm_start}"),
            &image,
            &format!("{}k", perm_length / 1024),
        ],
        "making /perm",
    )?;
    Ok(())
}

/// The partition table, written by sfdisk from the layout's script.
fn partition(image: &str, layout: &Layout) -> Result<(), ImageError> {
    let mut sfdisk = std::process::Command::new(tools::find("sfdisk").unwrap_or_else(|| "sfdisk".into()));
    sfdisk.args(["-q", image]).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::null());
    let mut child = sfdisk.spawn().context(|| "running sfdisk".into())?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(layout.sfdisk_script().as_bytes()).context(|| "writing to sfdisk".into())?;
    }
    let status = child.wait().context(|| "running sfdisk".into())?;
    if !status.success() {
        return Err(ImageError::Tool {
            program: "sfdisk".into(),
            what: "partitioning".into(),
            detail: status.to_string(),
        });
    }
    Ok(())
}

/// The boot partition: a FAT file system with syslinux, slot A's kernel and initramfs, and syslinux.cfg.
fn make_boot(image: &str, layout: &Layout, parts: &Parts) -> Result<(), ImageError> {
    let (boot_start, boot_length) = layout.partition(layout::BOOT_PARTITION);
    let fat = format!("{image}@@{boot_start}");
    tools::run(
        "mformat",
        &[
            "-i",
            &fat,
            "-T",
            &(boot_length / SECTOR).to_string(),
            "-h",
            "64",
            "-s",
            "32",
            "-H",
            &(boot_start / SECTOR).to_string(),
            "-F",
            "-v",
            "BOOT",
            "::",
        ],
        "making the boot file system",
    )?;
    tools::run("syslinux", &["--offset", &boot_start.to_string(), "--install", image], "installing syslinux")?;
    let config = tempfile::NamedTempFile::new().context(|| "a temporary file".into())?;
    std::fs::write(config.path(), &parts.syslinux_cfg).context(|| "writing syslinux.cfg".into())?;
    for (source, name) in [(parts.kernel, "vmlinuz-a"), (parts.initramfs, "initrd-a"), (config.path(), "syslinux.cfg")]
    {
        let target = format!("::/{name}");
        tools::run("mcopy", &["-o", "-i", &fat, &source.display().to_string(), &target], &format!("copying {name}"))?;
    }
    Ok(())
}

fn write_at(out: &Path, offset: u64, data: &[u8]) -> Result<(), ImageError> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(out).context(|| format!("opening {}", out.display()))?;
    file.write_all_at(data, offset).context(|| format!("writing {}", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_follow_each_other_and_perm_takes_the_rest() {
        let layout = Layout::for_size(2048 * MIB).expect("2 GiB");
        assert_eq!(layout.partition(1), (MIB, 64 * MIB));
        assert_eq!(layout.partition(2), (65 * MIB, 512 * MIB));
        assert_eq!(layout.partition(3), (577 * MIB, 512 * MIB));
        assert_eq!(layout.partition(4), (1089 * MIB, 959 * MIB));
        assert!(layout.sfdisk_script().contains("label-id: 0x72747264"));
        assert_eq!(Layout::for_size(1024 * MIB).expect("1 GiB").slot, 256 * MIB);
        let small = Layout::for_size(500 * MIB).expect_err("too small").to_string();
        assert!(small.contains("at least 641 MiB"), "{small}");
    }
}
