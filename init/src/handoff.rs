//! What routerd and init tell each other through files (init has no API): a kexec into another slot, a system
//! update confirmed, and why an update on trial was abandoned.

use std::path::Path;

/// routerd asks for a kexec: three lines, the kernel, the initramfs and the command line; then SIGUSR1 to PID 1.
pub const KEXEC_REQUEST: &str = "/run/routerd-init/kexec";
/// routerd confirmed the system update on trial: init stops the watchdog.
pub const CONFIRMED: &str = "/run/routerd-init/confirmed";
/// Under /perm: why init abandoned an update on trial (one line), for routerd in the old slot to report.
pub const TRIAL_FAILED: &str = "update/system-trial-failed";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KexecRequest {
    pub kernel: String,
    pub initramfs: String,
    pub cmdline: String,
}

impl KexecRequest {
    pub fn to_text(&self) -> String {
        format!("{}\n{}\n{}\n", self.kernel, self.initramfs, self.cmdline)
    }

    pub fn parse(text: &str) -> Option<KexecRequest> {
        let mut lines = text.lines();
        let (kernel, initramfs, cmdline) = (lines.next()?, lines.next()?, lines.next()?);
        (!kernel.is_empty() && !initramfs.is_empty()).then(|| KexecRequest {
            kernel: kernel.to_string(),
            initramfs: initramfs.to_string(),
            cmdline: cmdline.to_string(),
        })
    }

    pub fn write(&self) -> std::io::Result<()> {
        let path = Path::new(KEXEC_REQUEST);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, self.to_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_round_trips() {
        let request = KexecRequest {
            kernel: "/boot/vmlinuz-b".into(),
            initramfs: "/boot/initrd-b".into(),
            cmdline: "x=1 y".into(),
        };
        assert_eq!(KexecRequest::parse(&request.to_text()), Some(request));
        assert_eq!(KexecRequest::parse("only\n"), None);
    }
}
