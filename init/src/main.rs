//! routerd-init: PID 1 of the appliance. In the initramfs (a file `/initramfs` marks it) it mounts the root slot
//! and runs the root's init; in the root it is the system's init (see [`system`]).

mod initramfs;
mod log;
mod system;

use std::path::Path;

use log::Log;
use routerd_init::{modules, sys};

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

fn mount_kernel_file_systems(log: &Log) {
    for failure in sys::mount_kernel_file_systems() {
        log.line(&format!("init: {failure}"));
    }
}

/// Loads the modules listed in `list` (see [`modules::load_listed`]), logging what failed.
fn load_modules(log: &Log, list: &Path) {
    match modules::load_listed(list) {
        Ok(outcome) => {
            log.line(&format!("init: loaded {} modules from {}", outcome.loaded, list.display()));
            if !outcome.failed.is_empty() {
                log.line(&format!("init: modules not loaded: {}", outcome.failed.join(", ")));
            }
        }
        Err(why) => log.line(&format!("init: {why}: no modules loaded")),
    }
}

fn kernel_release() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|r| r.trim().to_string())
}
