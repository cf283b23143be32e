//! The router's own certificate authority: its CA, the server certificate, client identities, revocation
//! and pairing. Everything lives under `--perm/tls/`; private keys are mode 0600.
//!
//! Files: `ca.pem`, `ca.key`, `server.pem`, `server.key`, `clients/NAME.pem` (every issued client
//! certificate), `revoked.json` (what was revoked, human-readable), `crl.pem` (the same, signed, for the TLS
//! acceptor), `pairing/DIGEST.json` (one-time pairing codes, by the SHA-256 of their secret).

mod authority;
mod clients;
mod pairing;
mod revocation;
pub mod rotation;
pub mod throttle;

use std::path::{Path, PathBuf};

pub use authority::{Authority, ServerCredentials};
pub use clients::{ClientRecord, Validity, validate_identity_name};
pub use pairing::{PAIRING_CODE_LIFETIME, PairingError};
pub use revocation::RevokedEntry;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{what}: {source}")]
    Certificate { what: String, source: rcgen::Error },
    #[error("{path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("identity name {0:?} is not allowed: use 1–64 letters, digits, '-', '_' or '.', not starting with '.'")]
    InvalidName(String),
    #[error("an identity named {0:?} already exists; revoke it first or choose another name")]
    NameTaken(String),
    #[error("no identity named {0:?} was issued by this router")]
    UnknownName(String),
    #[error("the identity {0:?} is already revoked")]
    AlreadyRevoked(String),
    #[error(transparent)]
    Pairing(#[from] PairingError),
}

impl PkiError {
    fn certificate(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> PkiError {
        let what = what.into();
        move |source| PkiError::Certificate { what, source }
    }
}

/// Paths of the PKI's files under `--perm/tls`.
#[derive(Clone, Debug)]
pub struct PkiPaths {
    pub dir: PathBuf,
}

impl PkiPaths {
    pub fn new(perm: &Path) -> PkiPaths {
        PkiPaths { dir: perm.join("tls") }
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }
    pub fn clients_dir(&self) -> PathBuf {
        self.dir.join("clients")
    }
    pub fn client_cert(&self, name: &str) -> PathBuf {
        self.clients_dir().join(format!("{name}.pem"))
    }
    pub fn revoked(&self) -> PathBuf {
        self.dir.join("revoked.json")
    }
    pub fn crl(&self) -> PathBuf {
        self.dir.join("crl.pem")
    }
    pub fn pairing_dir(&self) -> PathBuf {
        self.dir.join("pairing")
    }
}

/// 16 random bytes with the top bit clear: a positive, unique certificate serial number.
fn random_serial() -> Result<[u8; 16], PkiError> {
    let mut serial = random_bytes::<16>()?;
    serial[0] &= 0x7f;
    serial[0] |= 0x01 << 6;
    Ok(serial)
}

fn random_bytes<const N: usize>() -> Result<[u8; N], PkiError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; N];
    ring::rand::SystemRandom::new().fill(&mut bytes).map_err(|_| PkiError::Corrupt {
        path: PathBuf::from("/dev/urandom"),
        message: "the system's random number generator failed".into(),
    })?;
    Ok(bytes)
}
