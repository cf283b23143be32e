//! Client identities: issued by name, recorded under `tls/clients/`, listed and revoked by name.

use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use time::OffsetDateTime;

use super::{
    Authority, PkiError,
    authority::{corrupt, not_before, pem_to_der},
    random_serial,
};
use crate::store::{self, Mode};

/// How long a client certificate is valid. The default is as long as the CA: revocation, not expiry, is how
/// an identity is taken back.
#[derive(Clone, Copy, Debug)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Default for Validity {
    fn default() -> Self {
        Validity { not_before: not_before(), not_after: rcgen::date_time_ymd(4096, 1, 1) }
    }
}

/// One issued client identity, as `rtrctl` and `routerd pki list` show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRecord {
    pub name: String,
    /// Serial number, lower-case hex.
    pub serial: String,
    pub not_after: OffsetDateTime,
    pub revoked: bool,
}

/// Identity names become file names and certificate subjects: keep them boring.
pub fn validate_identity_name(name: &str) -> Result<(), PkiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok { Ok(()) } else { Err(PkiError::InvalidName(name.to_string())) }
}

impl Authority {
    /// Issues a client identity with a freshly generated key. Returns (certificate PEM, private key PEM).
    pub fn issue_client(&self, name: &str, validity: Validity) -> Result<(String, String), PkiError> {
        validate_identity_name(name)?;
        let key = KeyPair::generate().map_err(PkiError::certificate("client key"))?;
        let params = self.client_params(name, validity)?;
        let _lock = store::lock_dir(&self.paths.dir)?;
        self.ensure_name_free(name)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(PkiError::certificate("client certificate"))?;
        self.record(name, &cert.pem())?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Signs the public key of a PKCS#10 request (from `rtrctl pair`) as client `name`. Everything in the
    /// request but its key is ignored: the router decides names, validity and usages.
    pub fn sign_client_request(&self, name: &str, csr_pem: &str) -> Result<String, PkiError> {
        validate_identity_name(name)?;
        let mut request =
            CertificateSigningRequestParams::from_pem(csr_pem).map_err(PkiError::certificate("certificate request"))?;
        request.params = self.client_params(name, Validity::default())?;
        let _lock = store::lock_dir(&self.paths.dir)?;
        self.ensure_name_free(name)?;
        let cert = request.signed_by(&self.issuer).map_err(PkiError::certificate("client certificate"))?;
        self.record(name, &cert.pem())?;
        Ok(cert.pem())
    }

    fn client_params(&self, name: &str, validity: Validity) -> Result<CertificateParams, PkiError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        Ok(params)
    }

    /// A name is free when it was never issued or its last certificate was revoked.
    fn ensure_name_free(&self, name: &str) -> Result<(), PkiError> {
        match self.client(name)? {
            Some(record) if !record.revoked => Err(PkiError::NameTaken(name.to_string())),
            _ => Ok(()),
        }
    }

    fn record(&self, name: &str, cert_pem: &str) -> Result<(), PkiError> {
        store::write_atomic(&self.paths.client_cert(name), cert_pem.as_bytes(), Mode::Public)?;
        Ok(())
    }

    /// The last certificate issued under `name`, if any.
    pub fn client(&self, name: &str) -> Result<Option<ClientRecord>, PkiError> {
        let path = self.paths.client_cert(name);
        let Some(bytes) = store::read_optional(&path)? else { return Ok(None) };
        let pem = String::from_utf8(bytes).map_err(|_| corrupt(&path, "not a text file"))?;
        let der = pem_to_der(&path, &pem)?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| corrupt(&path, &format!("not a certificate: {e}")))?;
        let serial = data_encoding::HEXLOWER.encode(cert.raw_serial());
        let not_after = cert.validity().not_after.to_datetime();
        let revoked = self.revoked_entries()?.iter().any(|entry| entry.serial == serial);
        Ok(Some(ClientRecord { name: name.to_string(), serial, not_after, revoked }))
    }

    /// Every identity this router issued, by name.
    pub fn clients(&self) -> Result<Vec<ClientRecord>, PkiError> {
        let dir = self.paths.clients_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(store::StoreError::Io { path: dir, source: e }.into()),
        };
        let mut records = Vec::new();
        for entry in entries.flatten() {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if let Some(name) = file_name.strip_suffix(".pem")
                && let Some(record) = self.client(name)?
            {
                records.push(record);
            }
        }
        records.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(records)
    }
}
