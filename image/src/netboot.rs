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
}

/// Fills `dir` with pxelinux.0, ldlinux.c32, the kernel and the recovery initramfs, whose init is
/// `routerd-install` from `binaries`.
pub fn build(
    dir: &Path,
    binaries: &Path,
    cache: Option<PathBuf>,
    kernel_deb: Option<&Path>,
) -> Result<Netboot, ImageError> {
    for (source, package) in [(PXELINUX, "pxelinux"), (LDLINUX, "syslinux-common")] {
        let source = Path::new(source);
        if !source.is_file() {
            return Err(ImageError::MissingTool {
                tool: if package == "pxelinux" { "pxelinux.0" } else { "ldlinux.c32" },
                package,
            });
        }
        let name = source.file_name().unwrap_or_default();
        std::fs::copy(source, dir.join(name)).context(|| format!("copying {}", source.display()))?;
    }
    let installer = binaries.join("routerd-install");
    if !installer.is_file() {
        return Err(ImageError::Invalid(format!(
            "no routerd-install in {}: build it first (cargo build --release --workspace --bins)",
            binaries.display()
        )));
    }
    let kernel = kernel::fetch(&cache.unwrap_or_else(crate::builder::default_cache), kernel_deb)?;
    std::fs::copy(kernel.vmlinuz(), dir.join(KERNEL)).context(|| "copying the kernel".into())?;
    let work = tempfile::Builder::new().prefix("routerd-netboot-").tempdir().context(|| "a work directory".into())?;
    let tree = Tree::new(work.path().join("initramfs"), &["dev", "proc", "sys", "tmp", "mnt", "etc"])?;
    tree.add_program(&installer, "init")?;
    tree.add_modules(&kernel, MODULES)?;
    let archive = cpio::initramfs(&tree.dir, &[("dev/console", 5, 1)])?;
    std::fs::write(dir.join(INITRAMFS), archive).context(|| "writing the recovery initramfs".into())?;
    Ok(Netboot { kernel_release: kernel.release })
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
}
