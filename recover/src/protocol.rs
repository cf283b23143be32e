//! What `routerd-recover` and the installer in the recovery initramfs say to each other over HTTP: the installer
//! fetches the manifest, the image and the backup, and posts a report after each step.

use serde::{Deserialize, Serialize};

pub const MANIFEST_PATH: &str = "/recover/manifest.json";
pub const IMAGE_PATH: &str = "/recover/router.img";
pub const BACKUP_PATH: &str = "/recover/backup.tar.gz";
pub const REPORT_PATH: &str = "/recover/report";

/// The kernel command line names the server (`routerd.recover=http://ADDRESS:PORT`) and, when given, the disk
/// to write (`routerd.disk=sda`).
pub const CMDLINE_SERVER: &str = "routerd.recover";
pub const CMDLINE_DISK: &str = "routerd.disk";
/// A token per run of routerd-recover (`routerd.session=HEX`), sent back in [`SESSION_HEADER`] with every
/// request: an installer booted by an earlier run can neither fetch from nor report to a later one.
pub const CMDLINE_SESSION: &str = "routerd.session";
pub const SESSION_HEADER: &str = "x-routerd-session";

/// The largest report the server reads, and the largest backup the installer takes.
pub const MAX_REPORT: usize = 16 << 10;
pub const MAX_BACKUP: u64 = 64 << 20;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub image: Artifact,
    pub backup: Option<Artifact>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Still at work; `done` of `total` bytes of this step.
    Working,
    /// Installed: the router restarts into the installed system.
    Succeeded,
    /// Stopped; `message` says why, and whether the disk was touched.
    Failed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub outcome: Outcome,
    /// `disk`, `backup`, `image`, `verify`, `perm`, `reboot`.
    pub step: String,
    pub message: String,
    #[serde(default)]
    pub done: u64,
    #[serde(default)]
    pub total: u64,
}

impl Report {
    pub fn working(step: &str, message: impl Into<String>, done: u64, total: u64) -> Report {
        Report { outcome: Outcome::Working, step: step.into(), message: message.into(), done, total }
    }

    pub fn failed(step: &str, message: impl Into<String>) -> Report {
        Report { outcome: Outcome::Failed, step: step.into(), message: message.into(), done: 0, total: 0 }
    }

    pub fn succeeded(message: impl Into<String>) -> Report {
        Report { outcome: Outcome::Succeeded, step: "reboot".into(), message: message.into(), done: 0, total: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_json_with_snake_case_outcomes() {
        let text = serde_json::to_string(&Report::working("image", "writing", 1, 2)).expect("JSON");
        assert!(text.contains("\"outcome\":\"working\""), "{text}");
        let back: Report = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, Report::working("image", "writing", 1, 2));
        assert!(serde_json::from_str::<Report>("{\"outcome\":\"exploded\"}").is_err());
    }
}
