//! The client identity file: what `routerd pki issue-client` and `rtrctl pair` write and rtrctl reads.
//!
//! One PEM file holding, in this order, the client certificate, its private key and the router's CA
//! certificate, preceded by a few lines of explanation (PEM parsers skip text outside the blocks).

use rustls_pki_types::{
    CertificateDer, PrivateKeyDer,
    pem::{self, PemObject, SectionKind},
};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("not a PEM file: {0}")]
    Pem(String),
    #[error("the identity has no {0}")]
    Missing(&'static str),
    #[error("the identity has {0} certificates; expected two (the client's and the router's CA)")]
    CertificateCount(usize),
}

/// A client certificate, its key, and the CA of the router that issued it.
#[derive(Debug)]
pub struct Identity {
    pub certificate: CertificateDer<'static>,
    pub private_key: PrivateKeyDer<'static>,
    pub ca_certificate: CertificateDer<'static>,
}

impl Identity {
    /// Parses the file's contents.
    pub fn from_pem(text: &[u8]) -> Result<Identity, IdentityError> {
        let mut certificates = Vec::new();
        let mut private_key = None;
        for section in <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(text) {
            let (kind, der) = section.map_err(|e| IdentityError::Pem(describe_pem_error(&e)))?;
            match kind {
                SectionKind::Certificate => certificates.push(CertificateDer::from(der)),
                SectionKind::PrivateKey => private_key = Some(PrivateKeyDer::Pkcs8(der.into())),
                SectionKind::EcPrivateKey => private_key = Some(PrivateKeyDer::Sec1(der.into())),
                SectionKind::RsaPrivateKey => private_key = Some(PrivateKeyDer::Pkcs1(der.into())),
                _ => {}
            }
        }
        let private_key = private_key.ok_or(IdentityError::Missing("private key"))?;
        if certificates.len() != 2 {
            return Err(IdentityError::CertificateCount(certificates.len()));
        }
        let ca_certificate = certificates.pop().ok_or(IdentityError::Missing("CA certificate"))?;
        let certificate = certificates.pop().ok_or(IdentityError::Missing("client certificate"))?;
        Ok(Identity { certificate, private_key, ca_certificate })
    }
}

fn describe_pem_error(error: &pem::Error) -> String {
    match error {
        pem::Error::NoItemsFound => "no PEM blocks found".to_string(),
        other => format!("{other:?}"),
    }
}

/// Assembles an identity file from PEM texts.
pub fn to_pem(name: &str, certificate_pem: &str, private_key_pem: &str, ca_certificate_pem: &str) -> String {
    format!(
        "routerd client identity {name:?}: client certificate, private key, router CA.\n\
         Keep this file private: it grants full control of the router.\n\n\
         {}\n{}\n{}\n",
        certificate_pem.trim_end(),
        private_key_pem.trim_end(),
        ca_certificate_pem.trim_end()
    )
}
