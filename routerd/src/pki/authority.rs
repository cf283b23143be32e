//! The CA and the server certificate.

use std::{collections::BTreeSet, net::IpAddr};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::OffsetDateTime;

use super::{PkiError, PkiPaths, random_serial};
use crate::store::{self, Mode};

/// A router boots with its clock at 1970 until NTP runs (the apu2c4 has no battery-backed clock), so every
/// certificate is valid from the epoch on.
pub(crate) fn not_before() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH
}

/// The router's CA, loaded from `tls/` (and created there on first use).
pub struct Authority {
    pub(crate) paths: PkiPaths,
    pub(crate) issuer: Issuer<'static, KeyPair>,
    ca_pem: String,
    ca_der: CertificateDer<'static>,
}

/// What the TLS acceptor needs: the certificate chain (server, CA) and the server's key.
pub struct ServerCredentials {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Authority {
    /// Loads the CA from `paths`, creating it when the directory has none yet.
    pub fn load_or_create(paths: PkiPaths, router_name: &str) -> Result<Authority, PkiError> {
        let _lock = store::lock_dir(&paths.dir)?;
        let cert = store::read_optional(&paths.ca_cert())?;
        let key = store::read_optional(&paths.ca_key())?;
        let (ca_pem, key_pem) = match (cert, key) {
            (Some(cert), Some(key)) => (utf8(&paths.ca_cert(), cert)?, utf8(&paths.ca_key(), key)?),
            (None, None) => create_ca(&paths, router_name)?,
            (Some(_), None) => return Err(corrupt(&paths.ca_key(), "missing although ca.pem exists")),
            (None, Some(_)) => return Err(corrupt(&paths.ca_cert(), "missing although ca.key exists")),
        };
        let key = KeyPair::from_pem(&key_pem).map_err(PkiError::certificate(paths.ca_key().display().to_string()))?;
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, key)
            .map_err(PkiError::certificate(paths.ca_cert().display().to_string()))?;
        let ca_der = pem_to_der(&paths.ca_cert(), &ca_pem)?;
        Ok(Authority { paths, issuer, ca_pem, ca_der })
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    pub fn ca_fingerprint(&self) -> [u8; 32] {
        routerd_proto::certificate_fingerprint(&self.ca_der)
    }

    pub fn paths(&self) -> &PkiPaths {
        &self.paths
    }

    /// Returns the server certificate, issuing a new one when there is none or when its names differ from
    /// `names` (DNS names and IP addresses the router is reached by).
    pub fn server_credentials(&self, names: &BTreeSet<String>) -> Result<ServerCredentials, PkiError> {
        let _lock = store::lock_dir(&self.paths.dir)?;
        let cert_path = self.paths.server_cert();
        let key_path = self.paths.server_key();
        let existing = match (store::read_optional(&cert_path)?, store::read_optional(&key_path)?) {
            (Some(cert), Some(key)) => Some((utf8(&cert_path, cert)?, utf8(&key_path, key)?)),
            _ => None,
        };
        let (cert_pem, key_pem) = match existing {
            Some((cert_pem, key_pem)) if self.is_current_server_cert(&cert_pem, names) => (cert_pem, key_pem),
            _ => {
                let (cert_pem, key_pem) = self.issue_server_cert(names)?;
                store::write_atomic(&key_path, key_pem.as_bytes(), Mode::Secret)?;
                store::write_atomic(&cert_path, cert_pem.as_bytes(), Mode::Public)?;
                tracing::info!(
                    "issued a server certificate for {}",
                    names.iter().cloned().collect::<Vec<_>>().join(", ")
                );
                (cert_pem, key_pem)
            }
        };
        let key = KeyPair::from_pem(&key_pem).map_err(PkiError::certificate(key_path.display().to_string()))?;
        Ok(ServerCredentials {
            chain: vec![pem_to_der(&cert_path, &cert_pem)?, self.ca_der.clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }

    fn is_current_server_cert(&self, cert_pem: &str, names: &BTreeSet<String>) -> bool {
        let Ok(der) = pem_to_der(&self.paths.server_cert(), cert_pem) else { return false };
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else { return false };
        if cert.issuer().as_raw() != self.issuer_subject_raw().as_slice() {
            return false;
        }
        let Ok(Some(san)) = cert.subject_alternative_name() else { return false };
        let present: BTreeSet<String> = san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                x509_parser::extensions::GeneralName::DNSName(dns) => Some(dns.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(bytes) => ip_from_bytes(bytes).map(|ip| ip.to_string()),
                _ => None,
            })
            .collect();
        &present == names
    }

    fn issuer_subject_raw(&self) -> Vec<u8> {
        x509_parser::parse_x509_certificate(&self.ca_der)
            .map(|(_, ca)| ca.subject().as_raw().to_vec())
            .unwrap_or_default()
    }

    fn issue_server_cert(&self, names: &BTreeSet<String>) -> Result<(String, String), PkiError> {
        let mut params = CertificateParams::default();
        params.subject_alt_names = names
            .iter()
            .map(|name| match name.parse::<IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => name.clone().try_into().map(SanType::DnsName),
            })
            .collect::<Result<_, _>>()
            .map_err(PkiError::certificate("server certificate names"))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, names.iter().next().cloned().unwrap_or_else(|| "routerd".into()));
        params.distinguished_name = dn;
        params.not_before = not_before();
        params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().map_err(PkiError::certificate("server key"))?;
        let cert = params.signed_by(&key, &self.issuer).map_err(PkiError::certificate("server certificate"))?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

fn create_ca(paths: &PkiPaths, router_name: &str) -> Result<(String, String), PkiError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    // A random suffix keeps two routers with the same hostname from having CAs with the same subject.
    let tag = data_encoding::HEXLOWER.encode(&super::random_bytes::<4>()?);
    dn.push(DnType::CommonName, format!("routerd CA {router_name} {tag}"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = not_before();
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
    let key = KeyPair::generate().map_err(PkiError::certificate("CA key"))?;
    let cert = params.self_signed(&key).map_err(PkiError::certificate("CA certificate"))?;
    let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
    store::write_atomic(&paths.ca_key(), key_pem.as_bytes(), Mode::Secret)?;
    store::write_atomic(&paths.ca_cert(), cert_pem.as_bytes(), Mode::Public)?;
    tracing::info!("created the router's certificate authority in {}", paths.dir.display());
    Ok((cert_pem, key_pem))
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

pub(crate) fn pem_to_der(path: &std::path::Path, pem: &str) -> Result<CertificateDer<'static>, PkiError> {
    use rustls_pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| corrupt(path, &format!("not a PEM certificate: {e:?}")))
}

fn utf8(path: &std::path::Path, bytes: Vec<u8>) -> Result<String, PkiError> {
    String::from_utf8(bytes).map_err(|_| corrupt(path, "not a text file"))
}

pub(crate) fn corrupt(path: &std::path::Path, message: &str) -> PkiError {
    PkiError::Corrupt { path: path.to_path_buf(), message: message.to_string() }
}
