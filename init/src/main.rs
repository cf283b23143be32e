//! routerd-init: PID 1 of the appliance. In the initramfs (a file `/initramfs` marks it) it mounts the root slot
//! and runs the root's init; in the root it is the system's init (see [`system`]).

mod initramfs;
mod log;
mod sys;
mod system;

use std::path::Path;

use log::Log;
use routerd_init::modules;

fn main() {
    let log = Log::new();
    if std::process::id() != 1 {
        eprintln!("routerd-init is the appliance's PID 1 (the kernel starts it); it does nothing as a command");
        std::process::exit(2);
    }
    let failure = if Path::new("/initramfs").exists() {
        match initramfs::run(&log) {
            Ok(never) => match never {},
            Err(error) => error,
        }
    } else {
        system::run(&log)
    };
    // PID 1 must not exit (the kernel panics, and with panic= reboots): say why, then restart the machine.
    log.line(&format!("init: {failure}; restarting in 10 s"));
    std::thread::sleep(std::time::Duration::from_secs(10));
    sys::sync();
    let error = sys::reboot(libc::RB_AUTOBOOT);
    log.line(&format!("init: reboot failed: {error}"));
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// /proc, /sys and /dev (devtmpfs: Debian's kernel does not mount it by itself), where they are not yet.
fn mount_kernel_file_systems(log: &Log) {
    // Each with a path that exists only once it is mounted.
    for (fstype, target, marker) in
        [("proc", "/proc", "self"), ("sysfs", "/sys", "kernel"), ("devtmpfs", "/dev", "null")]
    {
        let target = Path::new(target);
        if target.join(marker).exists() {
            continue;
        }
        let _ = std::fs::create_dir_all(target);
        if let Err(error) = sys::mount(fstype, target, fstype, libc::MS_NOSUID, "") {
            log.line(&format!("init: mounting {fstype} on {}: {error}", target.display()));
        }
    }
}

/// Loads the modules listed in `list` (files relative to /lib/modules/RELEASE, in load order, as the image
/// builder wrote them). A module that the hardware does not want (a CPU feature missing) is logged and skipped.
fn load_modules(log: &Log, list: &Path) {
    let Ok(text) = std::fs::read_to_string(list) else {
        log.line(&format!("init: no {}: no modules loaded", list.display()));
        return;
    };
    let Some(release) = kernel_release() else {
        log.line("init: the kernel's release is unknown: no modules loaded");
        return;
    };
    let base = Path::new("/lib/modules").join(release);
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let (mut loaded, mut failed) = (0, Vec::new());
    for file in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let parameters = modules::parameters_from_cmdline(&cmdline, &modules::module_name(file));
        match modules::insert(&base.join(file), &parameters) {
            Ok(()) => loaded += 1,
            Err(error) => failed.push(format!("{} ({error})", modules::module_name(file))),
        }
    }
    log.line(&format!("init: loaded {loaded} modules from {}", list.display()));
    if !failed.is_empty() {
        log.line(&format!("init: modules not loaded: {}", failed.join(", ")));
    }
}

fn kernel_release() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|r| r.trim().to_string())
}
