//! Revocation: `revoked.json` says what was revoked and when; `crl.pem` is the same list signed by the CA,
//! which the TLS acceptor checks during every handshake.

use std::collections::BTreeSet;

use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
use rustls_pki_types::CertificateRevocationListDer;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Authority, PkiError, authority::corrupt};
use crate::store::{self, Mode};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedEntry {
    pub name: String,
    /// Serial number, lower-case hex.
    pub serial: String,
    #[serde(with = "time::serde::rfc3339")]
    pub revoked_at: OffsetDateTime,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct RevokedFile {
    #[serde(default)]
    revoked: Vec<RevokedEntry>,
}

impl Authority {
    pub fn revoked_entries(&self) -> Result<Vec<RevokedEntry>, PkiError> {
        Ok(store::read_json_optional::<RevokedFile>(&self.paths.revoked())?.unwrap_or_default().revoked)
    }

    /// Serial numbers (hex) of every revoked certificate.
    pub fn revoked_serials(&self) -> Result<BTreeSet<String>, PkiError> {
        Ok(self.revoked_entries()?.into_iter().map(|entry| entry.serial).collect())
    }

    /// Revokes the identity issued under `name` and rewrites the CRL.
    pub fn revoke(&self, name: &str) -> Result<RevokedEntry, PkiError> {
        super::validate_identity_name(name)?;
        let _lock = store::lock_dir(&self.paths.dir)?;
        let record = self.client(name)?.ok_or_else(|| PkiError::UnknownName(name.to_string()))?;
        if record.revoked {
            return Err(PkiError::AlreadyRevoked(name.to_string()));
        }
        let mut file = store::read_json_optional::<RevokedFile>(&self.paths.revoked())?.unwrap_or_default();
        let entry = RevokedEntry { name: name.to_string(), serial: record.serial, revoked_at: now_seconds() };
        file.revoked.push(entry.clone());
        // The CRL goes first: if writing revoked.json then fails, the identity is still rejected.
        let crl = self.sign_crl(&file.revoked)?;
        store::write_atomic(&self.paths.crl(), crl.as_bytes(), Mode::Public)?;
        store::write_json(&self.paths.revoked(), &file, Mode::Public)?;
        tracing::info!("revoked client identity {name:?} (serial {})", entry.serial);
        Ok(entry)
    }

    /// The CRL as DER, signed now from `revoked.json` (so a CRL file lost or damaged is rebuilt).
    pub fn current_crl(&self) -> Result<CertificateRevocationListDer<'static>, PkiError> {
        let entries = self.revoked_entries()?;
        let pem = self.sign_crl(&entries)?;
        use rustls_pki_types::pem::PemObject;
        CertificateRevocationListDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| corrupt(&self.paths.crl(), &format!("{e:?}")))
    }

    fn sign_crl(&self, entries: &[RevokedEntry]) -> Result<String, PkiError> {
        let revoked_certs = entries
            .iter()
            .map(|entry| {
                let serial = data_encoding::HEXLOWER
                    .decode(entry.serial.as_bytes())
                    .map_err(|_| corrupt(&self.paths.revoked(), &format!("serial {:?} is not hex", entry.serial)))?;
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&serial),
                    revocation_time: entry.revoked_at,
                    reason_code: None,
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, PkiError>>()?;
        let params = CertificateRevocationListParams {
            this_update: super::authority::not_before(),
            next_update: rcgen::date_time_ymd(4096, 1, 1),
            crl_number: SerialNumber::from_slice(&(entries.len() as u64 + 1).to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer).map_err(PkiError::certificate("certificate revocation list"))?;
        crl.pem().map_err(PkiError::certificate("certificate revocation list"))
    }
}

fn now_seconds() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}
