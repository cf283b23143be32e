//! One-time pairing codes. `routerd pki pairing-code` writes one file per code under `tls/pairing/`, named by
//! the SHA-256 of its secret (the secret itself is never stored); the daemon marks it used when a client
//! pairs with it.

use std::{path::PathBuf, time::Duration};

use routerd_proto::pairing_code::PairingCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Authority, PkiError, random_bytes};
use crate::store::{self, Mode};

/// How long a pairing code can be used.
pub const PAIRING_CODE_LIFETIME: Duration = Duration::from_secs(10 * 60);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PairingError {
    #[error("the pairing code is not valid for this router; check it, or run `routerd pki pairing-code` for a new one")]
    Unknown,
    #[error("the pairing code was made by another router (its CA fingerprint does not match this router's)")]
    OtherRouter,
    #[error(
        "the pairing code was already used (at {used_at}, by {used_by:?}); run `routerd pki pairing-code` for a new one"
    )]
    Used { used_at: String, used_by: String },
    #[error("the pairing code expired at {0}; run `routerd pki pairing-code` for a new one")]
    Expired(String),
}

#[derive(Debug, Serialize, Deserialize)]
struct PairingRecord {
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    used_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    used_by: Option<String>,
}

impl Authority {
    /// Creates a code valid from `now` for [`PAIRING_CODE_LIFETIME`].
    pub fn create_pairing_code(&self, now: OffsetDateTime) -> Result<(PairingCode, OffsetDateTime), PkiError> {
        let code = PairingCode::new(random_bytes()?, &self.ca_fingerprint());
        let now = now.replace_nanosecond(0).unwrap_or(now);
        let record =
            PairingRecord { created_at: now, expires_at: now + PAIRING_CODE_LIFETIME, used_at: None, used_by: None };
        let path = self.paths.pairing_dir().join(format!("{}.json", code.secret_digest_hex()));
        store::write_json(&path, &record, Mode::Secret)?;
        Ok((code, record.expires_at))
    }

    /// Whether `code` could be used at `now`, without using it: the first thing a pairing checks, so a caller
    /// without a valid code learns nothing else.
    pub fn check_pairing_code(&self, code: &PairingCode, now: OffsetDateTime) -> Result<(), PkiError> {
        self.usable_record(code, now).map(drop)
    }

    fn usable_record(&self, code: &PairingCode, now: OffsetDateTime) -> Result<(PathBuf, PairingRecord), PkiError> {
        if !code.pins(&self.ca_fingerprint()) {
            return Err(PairingError::OtherRouter.into());
        }
        let path = self.paths.pairing_dir().join(format!("{}.json", code.secret_digest_hex()));
        let record = store::read_json_optional::<PairingRecord>(&path)?.ok_or(PairingError::Unknown)?;
        if let Some(used_at) = record.used_at {
            return Err(
                PairingError::Used { used_at: rfc3339(used_at), used_by: record.used_by.unwrap_or_default() }.into()
            );
        }
        if now >= record.expires_at {
            return Err(PairingError::Expired(rfc3339(record.expires_at)).into());
        }
        Ok((path, record))
    }

    /// Marks `code` as used by `name` at `now`, or says why it cannot be used.
    pub fn redeem_pairing_code(&self, code: &PairingCode, name: &str, now: OffsetDateTime) -> Result<(), PkiError> {
        let _lock = store::lock_dir(&self.paths.dir)?;
        let (path, mut record) = self.usable_record(code, now)?;
        record.used_at = Some(now.replace_nanosecond(0).unwrap_or(now));
        record.used_by = Some(name.to_string());
        store::write_json(&path, &record, Mode::Secret)?;
        Ok(())
    }
}

fn rfc3339(time: OffsetDateTime) -> String {
    time.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| time.to_string())
}
