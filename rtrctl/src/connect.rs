//! Connecting to a router: its address, the TLS configuration for an identity (or for pairing), and a gRPC
//! channel over it.
//!
//! The server's certificate is checked against the router's own CA from the identity, not against public
//! roots. The name in the certificate is not required to match the address used: the router may be reached
//! by an address it did not know when it made its certificate, and the CA is unique to that one router.

use std::{fmt, net::IpAddr, path::Path, sync::Arc, time::Duration};

use hyper_util::rt::TokioIo;
use routerd_proto::identity::Identity;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::CryptoProvider,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::error::CliError;

/// `HOST[:PORT]` as given to `--router`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterAddr {
    pub host: String,
    pub port: u16,
}

impl RouterAddr {
    pub fn parse(text: &str) -> Result<RouterAddr, CliError> {
        let bad = || CliError::Usage(format!("--router {text:?}: expected HOST, HOST:PORT, IPV6 or [IPV6]:PORT"));
        let text = text.trim();
        if text.is_empty() {
            return Err(bad());
        }
        if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(bad)?;
            host.parse::<IpAddr>().map_err(|_| bad())?;
            let port = match after.strip_prefix(':') {
                Some(port) => port.parse().map_err(|_| bad())?,
                None if after.is_empty() => routerd_proto::DEFAULT_PORT,
                None => return Err(bad()),
            };
            return Ok(RouterAddr { host: host.to_string(), port });
        }
        if text.parse::<IpAddr>().is_ok() {
            return Ok(RouterAddr { host: text.to_string(), port: routerd_proto::DEFAULT_PORT });
        }
        match text.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() => {
                Ok(RouterAddr { host: host.to_string(), port: port.parse().map_err(|_| bad())? })
            }
            Some(_) => Err(bad()),
            None => Ok(RouterAddr { host: text.to_string(), port: routerd_proto::DEFAULT_PORT }),
        }
    }

    fn server_name(&self) -> Result<ServerName<'static>, CliError> {
        ServerName::try_from(self.host.clone())
            .map_err(|_| CliError::Usage(format!("--router: {:?} is not a valid host name or address", self.host)))
    }
}

impl fmt::Display for RouterAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads the identity file.
pub fn load_identity(path: &Path) -> Result<Identity, CliError> {
    let bytes = std::fs::read(path).map_err(|source| CliError::Identity {
        path: path.to_path_buf(),
        message: if source.kind() == std::io::ErrorKind::NotFound {
            "no such file; pair with `rtrctl pair --router HOST --code CODE` or pass --identity".to_string()
        } else {
            source.to_string()
        },
    })?;
    Identity::from_pem(&bytes).map_err(|e| CliError::Identity { path: path.to_path_buf(), message: e.to_string() })
}

/// TLS for everyday commands: present the identity, trust only the router's CA from it. An identity that has
/// expired is refused here, with its date, rather than by the router with a vaguer error.
pub fn identity_tls(identity: &Identity) -> Result<ClientConfig, CliError> {
    check_not_expired(identity)?;
    identity_tls_unchecked(identity)
}

/// Fails when the identity's certificate is past its end date.
pub fn check_not_expired(identity: &Identity) -> Result<(), CliError> {
    let (_, cert) = x509_parser::parse_x509_certificate(&identity.certificate)
        .map_err(|e| CliError::Tls(format!("the identity's certificate cannot be read: {e}")))?;
    let not_after = cert.validity().not_after;
    if not_after.timestamp() < time::OffsetDateTime::now_utc().unix_timestamp() {
        return Err(CliError::IdentityExpired(not_after.to_string()));
    }
    Ok(())
}

/// [`identity_tls`] without the local expiry check (the router checks again anyway).
pub fn identity_tls_unchecked(identity: &Identity) -> Result<ClientConfig, CliError> {
    let verifier =
        ca_verifier(identity.ca_certificate.clone()).map_err(|e| CliError::tls("the identity's CA certificate", e))?;
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| CliError::tls("TLS versions", e))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(RouterVerifier { trust: Trust::Ca(verifier) }))
        .with_client_auth_cert(vec![identity.certificate.clone()], identity.private_key.clone_key())
        .map_err(|e| CliError::tls("the identity's certificate or key", e))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// TLS for pairing: no client certificate; the router must prove it holds the CA the pairing code pins.
pub fn pairing_tls(code: &routerd_proto::pairing_code::PairingCode) -> Result<ClientConfig, CliError> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| CliError::tls("TLS versions", e))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(RouterVerifier { trust: Trust::PinnedCa(code.clone()) }))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Opens a gRPC channel to `router` over TLS with `config`.
pub async fn channel(router: &RouterAddr, config: ClientConfig) -> Result<Channel, CliError> {
    let server_name = router.server_name()?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let address = router.to_string();
    let make_connection = tower::service_fn(move |_: Uri| {
        let connector = connector.clone();
        let server_name = server_name.clone();
        let address = address.clone();
        async move {
            let tcp = TcpStream::connect(&address).await?;
            let _ = tcp.set_nodelay(true);
            let tls = connector.connect(server_name, tcp).await?;
            Ok::<_, std::io::Error>(TokioIo::new(tls))
        }
    });
    // The scheme is http because TLS happens in the connector above, not in tonic.
    let endpoint = Endpoint::from_shared(format!("http://{router}"))
        .map_err(|e| CliError::Usage(format!("--router {router}: {e}")))?
        .connect_timeout(Duration::from_secs(10));
    endpoint.connect_with_connector(make_connection).await.map_err(|error| CliError::from_connect_error(router, &error))
}

/// Whom a connection trusts as the router.
#[derive(Debug)]
enum Trust {
    /// The router's CA from an identity.
    Ca(Arc<WebPkiServerVerifier>),
    /// During pairing: whichever CA in the server's chain the pairing code pins.
    PinnedCa(routerd_proto::pairing_code::PairingCode),
}

/// Verifies the server's chain against the trusted CA; a name mismatch alone is accepted (see the module docs).
#[derive(Debug)]
struct RouterVerifier {
    trust: Trust,
}

/// The message rustls carries when the router's CA is not the one the pairing code names.
pub const PINNED_CA_MISMATCH: &str = "router CA does not match the pairing code";

fn ca_verifier(ca: CertificateDer<'static>) -> Result<Arc<WebPkiServerVerifier>, rustls::Error> {
    let mut roots = RootCertStore::empty();
    roots.add(ca)?;
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))
}

impl ServerCertVerifier for RouterVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let pinned;
        let verifier = match &self.trust {
            Trust::Ca(verifier) => verifier,
            Trust::PinnedCa(code) => {
                let ca = intermediates
                    .iter()
                    .find(|cert| code.pins(&routerd_proto::certificate_fingerprint(cert)))
                    .ok_or_else(|| rustls::Error::General(PINNED_CA_MISMATCH.to_string()))?;
                pinned = ca_verifier(ca.clone().into_owned())?;
                &pinned
            }
        };
        match verifier.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &provider().signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &provider().signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider().signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn router_addresses() {
        let parse = |s: &str| RouterAddr::parse(s).map(|a| (a.host, a.port));
        assert_eq!(parse("router.lan").ok(), Some(("router.lan".into(), 9339)));
        assert_eq!(parse("192.0.2.1:1234").ok(), Some(("192.0.2.1".into(), 1234)));
        assert_eq!(parse("2001:db8::1").ok(), Some(("2001:db8::1".into(), 9339)));
        assert_eq!(parse("[2001:db8::1]:9000").ok(), Some(("2001:db8::1".into(), 9000)));
        assert_eq!(parse("[2001:db8::1]").ok(), Some(("2001:db8::1".into(), 9339)));
        for bad in ["", ":9339", "host:port", "[nothex]:1", "[2001:db8::1]x", "host:70000"] {
            assert!(RouterAddr::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            RouterAddr::parse("[2001:db8::1]:9000").map(|a| a.to_string()).ok(),
            Some("[2001:db8::1]:9000".into())
        );
    }
}
