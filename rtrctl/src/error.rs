//! Everything that can go wrong in rtrctl, phrased for the person at the keyboard.

use std::path::PathBuf;

use crate::connect::{PINNED_CA_MISMATCH, RouterAddr};

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("identity {path}: {message}")]
    Identity { path: PathBuf, message: String },
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("cannot reach the router at {router}: {message}")]
    Unreachable { router: String, message: String },
    #[error(
        "this router's certificate does not match the identity's CA: {router} is not the router this identity \
         belongs to (or someone is in between)"
    )]
    RouterCertificateMismatch { router: String },
    #[error(
        "the router at {router} does not hold the CA the pairing code names: check the address and the code \
         (or someone is in between)"
    )]
    PairingCodeMismatch { router: String },
    #[error("this identity expired on {0}")]
    IdentityExpired(String),
    #[error("the router rejected this identity: {0}")]
    IdentityRejected(String),
    #[error("{0}")]
    Refused(String),
    #[error("this router's routerd does not support {0} yet")]
    NotImplemented(String),
    #[error("the router answered with an error ({code:?}): {message}")]
    Rpc { code: tonic::Code, message: String },
    #[error("{0}")]
    Io(String),
    /// The command worked and found a problem (a failed check, a host that did not answer): exit status 1.
    #[error("{0}")]
    Negative(String),
}

const REJECTED_GENERIC: &str = "it was revoked or belongs to another router";

impl CliError {
    pub fn tls(what: &str, error: impl std::fmt::Display) -> CliError {
        CliError::Tls(format!("{what}: {error}"))
    }

    /// Explains a failure to connect (TCP or TLS handshake).
    pub fn from_connect_error(router: &RouterAddr, error: &(dyn std::error::Error + 'static)) -> CliError {
        let router_text = router.to_string();
        if let Some(tls) = find_rustls_error(error) {
            return match tls {
                rustls::Error::General(message) if message == PINNED_CA_MISMATCH => {
                    CliError::PairingCodeMismatch { router: router_text }
                }
                rustls::Error::InvalidCertificate(_) => CliError::RouterCertificateMismatch { router: router_text },
                rustls::Error::AlertReceived(alert) => CliError::IdentityRejected(explain_alert(&format!("{alert:?}"))),
                other => CliError::Unreachable { router: router_text, message: format!("TLS: {other}") },
            };
        }
        let message = match find_io_error(error).map(|e| e.kind()) {
            Some(std::io::ErrorKind::ConnectionRefused) => {
                format!("connection refused: is routerd running and listening on port {}?", router.port)
            }
            Some(std::io::ErrorKind::TimedOut) => "timed out".to_string(),
            _ => chain_text(error),
        };
        CliError::Unreachable { router: router_text, message }
    }

    /// Explains an RPC that failed. With TLS 1.3 a rejected client certificate only shows up here, at the first
    /// call, and its text varies ("CertificateRequired", "broken pipe", "connection closed", ...).
    pub fn from_status(what: &str, status: &tonic::Status) -> CliError {
        let full =
            format!("{} {}", status.message(), std::error::Error::source(status).map(chain_text).unwrap_or_default());
        match status.code() {
            tonic::Code::Unimplemented => CliError::NotImplemented(what.to_string()),
            tonic::Code::Unauthenticated => CliError::IdentityRejected(status.message().to_string()),
            tonic::Code::InvalidArgument
            | tonic::Code::PermissionDenied
            | tonic::Code::FailedPrecondition
            | tonic::Code::AlreadyExists
            | tonic::Code::NotFound => CliError::Refused(status.message().to_string()),
            tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal | tonic::Code::Cancelled
                if looks_like_rejected_handshake(&full) =>
            {
                CliError::IdentityRejected(explain_alert(&full))
            }
            code => CliError::Rpc { code, message: full.trim().to_string() },
        }
    }

    /// A short hint printed after the error, if there is a useful next step.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            CliError::IdentityRejected(_)
            | CliError::IdentityExpired(_)
            | CliError::RouterCertificateMismatch { .. } => {
                Some("get a new identity: run `routerd pki pairing-code` on the router, then `rtrctl pair`")
            }
            CliError::Unreachable { .. } => Some("check --router (or RTRCTL_ROUTER) and that routerd is running"),
            _ => None,
        }
    }
}

fn looks_like_rejected_handshake(text: &str) -> bool {
    [
        "CertificateRevoked",
        "CertificateExpired",
        "CertificateRequired",
        "BadCertificate",
        "UnknownCA",
        "DecryptError",
        "broken pipe",
        "connection closed",
        "connection reset",
        "Connection reset",
        "peer closed connection",
        "connection was not ready",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

fn explain_alert(text: &str) -> String {
    if text.contains("CertificateRevoked") {
        "it was revoked".to_string()
    } else if text.contains("CertificateExpired") {
        "it has expired".to_string()
    } else {
        REJECTED_GENERIC.to_string()
    }
}

fn find_rustls_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(tls) = io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(tls);
        }
        current = e.source();
    }
    None
}

fn find_io_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        current = e.source();
    }
    None
}

fn chain_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut current = error.source();
    while let Some(e) = current {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}
