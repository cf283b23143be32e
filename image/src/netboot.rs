//! The recovery network boot that `routerd-recover` serves over TFTP: pxelinux (Debian's `pxelinux` and
//! `syslinux-common`), the appliance's kernel, and an initramfs whose init is `routerd-install` with the disk,
//! NIC and file system drivers it needs. The boot configuration (`pxelinux.cfg/default`), which names the
//! server, is routerd-recover's to write.

use std::path::{Path, PathBuf};

use crate::{
    cpio,
    error::{ImageError, IoContext},
    kernel,
    tree::Tree,
};

pub const PXELINUX: &str = "/usr/lib/PXELINUX/pxelinux.0";
pub const LDLINUX: &str = "/usr/lib/syslinux/modules/bios/ldlinux.c32";
pub const KERNEL: &str = "vmlinuz";
pub const INITRAMFS: &str = "initrd";
/// The recovery initramfs's init, from the workspace's programs (see [`crate::builder::binaries_dir`]).
pub const INSTALLER: &str = "routerd-install";

/// Disks (the apu2's AHCI mSATA and SD card, qemu's models), NICs (i210, qemu's e1000 and virtio), and the file
/// systems of /perm.
const MODULES: &[&str] = &[
    "ahci",
    "ata_piix",
    "sd_mod",
    "sdhci_pci",
    "mmc_block",
    "virtio_pci",
    "virtio_blk",
    "virtio_scsi",
    "e1000",
    "e1000e",
    "igb",
    "virtio_net",
    "ext4",
    "crc32c_generic",
];

pub struct Netboot {
    pub kernel_release: String,
    /// Why the network boot does not use the image's own kernel, when it does not.
    pub not_the_images_kernel: Option<String>,
}

/// Fills `dir` with pxelinux.0, ldlinux.c32, a kernel and the recovery initramfs, whose init is [`INSTALLER`]
/// from `binaries`. The kernel is the one `image` boots by default, with the modules of its Debian package (from
/// the cache or apt); when that package cannot be had (or with `kernel_deb`), Debian's current kernel, which
/// works as well: the installed image boots its own kernel.
pub fn build(
    dir: &Path,
    binaries: &Path,
    cache: Option<PathBuf>,
    kernel_deb: Option<&Path>,
    image: Option<&Path>,
) -> Result<Netboot, ImageError> {
    for (source, tool, package) in [(PXELINUX, "pxelinux.0", "pxelinux"), (LDLINUX, "ldlinux.c32", "syslinux-common")] {
        let source = Path::new(source);
        if !source.is_file() {
            return Err(ImageError::MissingTool { tool, package });
        }
        let name = source.file_name().unwrap_or_default();
        std::fs::copy(source, dir.join(name)).context(|| format!("copying {}", source.display()))?;
    }
    let work = tempfile::Builder::new().prefix("routerd-netboot-").tempdir().context(|| "a work directory".into())?;
    let cache = cache.unwrap_or_else(crate::builder::default_cache);
    let images = match (kernel_deb, image) {
        (None, Some(image)) => Some(
            image_kernel(image, work.path())
                .and_then(|(vmlinuz, release)| kernel::fetch_release(&cache, &release).map(|kernel| (vmlinuz, kernel))),
        ),
        _ => None,
    };
    let (vmlinuz, kernel, not_the_images_kernel) = match images {
        Some(Ok((vmlinuz, kernel))) => (vmlinuz, kernel, None),
        Some(Err(error)) => {
            let kernel = kernel::fetch(&cache, None)?;
            (kernel.vmlinuz(), kernel, Some(error.to_string()))
        }
        None => {
            let kernel = kernel::fetch(&cache, kernel_deb)?;
            let why = if kernel_deb.is_some() { "--kernel-deb given" } else { "no image given" };
            (kernel.vmlinuz(), kernel, Some(why.to_string()))
        }
    };
    std::fs::copy(&vmlinuz, dir.join(KERNEL)).context(|| "copying the kernel".into())?;
    let tree = Tree::new(work.path().join("initramfs"), &["dev", "proc", "sys", "tmp", "mnt", "etc"])?;
    tree.add_program(&binaries.join(INSTALLER), "init")?;
    tree.add_modules(&kernel, MODULES)?;
    let archive = cpio::initramfs(&tree.dir, &[("dev/console", 5, 1)])?;
    std::fs::write(dir.join(INITRAMFS), archive).context(|| "writing the recovery initramfs".into())?;
    Ok(Netboot { kernel_release: kernel.release, not_the_images_kernel })
}

/// The release of a bzImage (`6.1.0-57-amd64`), from the version string its setup header points to.
pub fn bzimage_release(kernel: &[u8]) -> Option<String> {
    if kernel.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let pointer = usize::from(u16::from_le_bytes([*kernel.get(0x20e)?, *kernel.get(0x20f)?]));
    let text = kernel.get(pointer + 0x200..)?;
    let end = text.iter().take(256).position(|b| *b == b' ' || *b == 0)?;
    let release = std::str::from_utf8(&text[..end]).ok()?;
    (!release.is_empty()).then(|| release.to_string())
}

/// The kernel `image` boots by default (syslinux.cfg's DEFAULT), copied out of its boot partition with mtools
/// into `work`, and its release.
pub fn image_kernel(image: &Path, work: &Path) -> Result<(PathBuf, String), ImageError> {
    let mut sector = [0u8; 512];
    std::io::Read::read_exact(
        &mut std::fs::File::open(image).context(|| format!("opening {}", image.display()))?,
        &mut sector,
    )
    .context(|| format!("reading {}", image.display()))?;
    // Partition 1's first sector, from the MBR's first partition entry.
    let first_lba = u32::from_le_bytes([sector[454], sector[455], sector[456], sector[457]]);
    let boot = format!("{}@@{}", image.display(), u64::from(first_lba) * 512);
    let copy = |name: &str| -> Result<PathBuf, ImageError> {
        let out = work.join(name);
        crate::tools::run(
            "mcopy",
            &["-n", "-o", "-i", &boot, &format!("::{name}"), &out.display().to_string()],
            "reading the image's boot partition",
        )?;
        Ok(out)
    };
    let config = std::fs::read_to_string(copy("syslinux.cfg")?).context(|| "reading syslinux.cfg".into())?;
    let slot = routerd_init::layout::syslinux_default(&config).unwrap_or(routerd_init::layout::Slot::A);
    let vmlinuz = copy(&slot.kernel())?;
    let bytes = std::fs::read(&vmlinuz).context(|| "reading the image's kernel".into())?;
    let release = bzimage_release(&bytes)
        .ok_or_else(|| ImageError::Invalid(format!("{}: its kernel names no release", image.display())))?;
    Ok((vmlinuz, release))
}

/// `pxelinux.cfg/default`: boots the recovery kernel with the server's URL and its run's token; `IPAPPEND 3`
/// adds the address DHCP gave (`ip=`) and the booting NIC (`BOOTIF=`).
pub fn pxelinux_cfg(server_url: &str, session: &str, disk: Option<&str>) -> String {
    let disk = disk.map(|d| format!(" routerd.disk={d}")).unwrap_or_default();
    format!(
        "SERIAL 0 115200\nPROMPT 0\nTIMEOUT 0\nDEFAULT recover\nLABEL recover\n  KERNEL {KERNEL}\n  INITRD {INITRAMFS}\n  \
         APPEND console=ttyS0,115200 panic=10 routerd.recover={server_url} routerd.session={session}{disk}\n  \
         IPAPPEND 3\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boot_configuration_names_the_server_the_run_and_asks_for_the_address() {
        let config = pxelinux_cfg("http://192.0.2.11:8067", "c0ffee", Some("sdb"));
        assert!(config.starts_with("SERIAL 0 115200\n"), "{config}");
        for line in [
            "  KERNEL vmlinuz\n",
            "  INITRD initrd\n",
            "  APPEND console=ttyS0,115200 panic=10 routerd.recover=http://192.0.2.11:8067 routerd.session=c0ffee routerd.disk=sdb\n",
            "  IPAPPEND 3\n",
        ] {
            assert!(config.contains(line), "{line:?} missing:\n{config}");
        }
        assert!(!pxelinux_cfg("http://a", "t", None).contains("routerd.disk"));
    }

    #[test]
    fn a_bzimage_names_its_release_through_its_setup_header() {
        let mut kernel = vec![0u8; 0x4000];
        kernel[0x202..0x206].copy_from_slice(b"HdrS");
        kernel[0x20e..0x210].copy_from_slice(&0x3000u16.to_le_bytes());
        let version = b"6.1.0-57-amd64 (debian-kernel@lists.debian.org) #1 SMP";
        kernel[0x3200..0x3200 + version.len()].copy_from_slice(version);
        assert_eq!(bzimage_release(&kernel).as_deref(), Some("6.1.0-57-amd64"));
        kernel[0x202] = b'X';
        assert_eq!(bzimage_release(&kernel), None);
        assert_eq!(bzimage_release(&kernel[..0x100]), None);
    }
}
