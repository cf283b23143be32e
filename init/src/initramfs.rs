//! Stage one, in the initramfs: load the disk drivers, find the root slot named on the kernel command line,
//! mount it and make it `/`, then run its init (this program again, as stage two).

use std::{path::Path, time::Duration};

use routerd_init::cmdline::Cmdline;

use routerd_init::block;

use routerd_init::sys;

use crate::log::Log;

/// How long the disk may take to appear (drivers probe in the background; under software emulation, slowly).
const ROOT_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) fn run(log: &Log) -> Result<std::convert::Infallible, String> {
    crate::mount_kernel_file_systems(log);
    crate::load_modules(log, Path::new("/etc/modules.load"));
    let cmdline = Cmdline::read().map_err(|e| format!("reading /proc/cmdline: {e}"))?;
    let root = cmdline.get("routerd.root").ok_or("no routerd.root= on the kernel command line")?;
    let device = block::wait_for_partition(root, ROOT_TIMEOUT)?;
    log.line(&format!("init: root slot {} is {}", cmdline.get("routerd.slot").unwrap_or("?"), device.display()));
    let new_root = Path::new("/root");
    sys::mount(&device.to_string_lossy(), new_root, "squashfs", libc::MS_RDONLY, "")
        .map_err(|e| format!("mounting {} (squashfs) on /root: {e}", device.display()))?;
    for mount in ["/dev", "/proc", "/sys"] {
        sys::move_mount(Path::new(mount), &new_root.join(&mount[1..]))
            .map_err(|e| format!("moving {mount} into the root: {e}"))?;
    }
    // switch_root: the new root becomes `/`. The initramfs's few MB stay in memory; not worth a recursive delete.
    std::env::set_current_dir(new_root).map_err(|e| format!("entering /root: {e}"))?;
    sys::move_mount(Path::new("."), Path::new("/")).map_err(|e| format!("moving the root to /: {e}"))?;
    sys::chroot(Path::new(".")).map_err(|e| format!("chroot: {e}"))?;
    std::env::set_current_dir("/").map_err(|e| format!("entering /: {e}"))?;
    let error = std::os::unix::process::CommandExt::exec(&mut std::process::Command::new("/sbin/init"));
    Err(format!("running /sbin/init of the root slot: {error}"))
}
