//! What can go wrong while building or driving the virtual home network.

use std::{io, path::PathBuf, time::Duration};

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(
        "missing programs: {}. Install them with `apt-get install -y {}` (or run `bash scripts/setup.sh`)",
        .0.iter().map(|(program, package)| format!("{program} (Debian package {package})")).collect::<Vec<_>>().join(", "),
        .0.iter().map(|(_, package)| *package).collect::<Vec<_>>().join(" ")
    )]
    MissingPrograms(Vec<(&'static str, &'static str)>),

    #[error("{binary} is not built (looked in {}): run `cargo build -p {package}` first", .searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    MissingBinary { binary: &'static str, package: &'static str, searched: Vec<PathBuf> },

    #[error("the lab must run as root: network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN")]
    NotRoot,

    #[error("`{command}` failed ({status}){}", if .output.is_empty() { String::new() } else { format!(": {}", .output.trim_end()) })]
    CommandFailed { command: String, status: String, output: String },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    #[error("timed out after {:.1} s waiting for {what}", .waited.as_secs_f64())]
    Timeout { what: String, waited: Duration },

    #[error("{name} exited ({status}) before it was ready{}", if .log_tail.is_empty() { String::new() } else { format!("; its last log lines:\n{}", .log_tail) })]
    ExitedEarly { name: String, status: String, log_tail: String },

    #[error("no lab named {0:?} is running (`lab list` shows the running ones)")]
    NoSuchLab(String),

    #[error("{what}: {detail}")]
    Unexpected { what: String, detail: String },
}

impl LabError {
    pub fn unexpected(what: impl Into<String>, detail: impl Into<String>) -> Self {
        LabError::Unexpected { what: what.into(), detail: detail.into() }
    }
}

/// Attaches what was being done to an I/O error.
pub trait IoContext<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, LabError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, LabError> {
        self.map_err(|source| LabError::Io { context: context(), source })
    }
}
