use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{tool} is missing: install the Debian package {package} (apt-get install {package})")]
    MissingTool { tool: &'static str, package: &'static str },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("{program} failed ({what}): {detail}")]
    Tool { program: String, what: String, detail: String },
    #[error("--perm {dir}: {file}: {reason}")]
    Perm { dir: PathBuf, file: String, reason: String },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Modules(#[from] routerd_init::modules::ModuleError),
}

pub trait IoContext<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, ImageError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, ImageError> {
        self.map_err(|source| ImageError::Io { what: what(), source })
    }
}
