//! System updates on the appliance: a bundle (kernel, initramfs, root) goes to the slot that is not running, a
//! kexec starts it on trial with the watchdog armed, and only once it is healthy does it become the boot default.
//! Any failure (routerd exits, never healthy, a kernel panic or hang, a power cut) ends in the old slot, which
//! stayed the boot default throughout, and says why.

pub mod bundle;
pub mod slots;
pub mod state;
pub mod trial;

/// The version of the system this routerd runs in (`/etc/routerd-release`, written by routerd-image).
pub fn running_system() -> Option<String> {
    let text = std::fs::read_to_string("/etc/routerd-release").ok()?;
    text.lines().find_map(|l| l.strip_prefix("system ")).map(|v| v.trim().to_string())
}
