use thiserror::Error;

/// Why an install stopped. Each says whether the disk was touched.
#[derive(Debug, Error)]
pub enum InstallError {
    #[error(transparent)]
    Params(#[from] super::boot_params::ParamError),
    #[error("network: {0}")]
    Network(String),
    #[error("{0}; nothing was written to the disk")]
    Refused(String),
    #[error("writing the disk: {0}; the disk is not bootable now: run routerd-recover again")]
    Disk(String),
    #[error("restoring /perm: {0}; the image is written but /perm is not restored: run routerd-recover again")]
    Perm(String),
}

impl InstallError {
    /// The step a failure belongs to, for the report.
    pub fn step(&self) -> &'static str {
        match self {
            InstallError::Params(_) | InstallError::Network(_) => "network",
            InstallError::Refused(_) => "check",
            InstallError::Disk(_) => "image",
            InstallError::Perm(_) => "perm",
        }
    }
}
