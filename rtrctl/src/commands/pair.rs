//! `rtrctl pair`: trade a pairing code for a client identity.

use routerd_proto::{identity, pairing_code::PairingCode, v1 as pb};
use serde::Serialize;

use crate::{
    cli::Cli,
    connect,
    error::CliError,
    output::{self, Format},
};

#[derive(Debug, Serialize)]
struct PairDoc {
    name: String,
    router: String,
    identity: String,
}

pub async fn run(cli: &Cli, code: &str, name: Option<&str>, force: bool) -> Result<(), CliError> {
    let path = cli.identity_path();
    if path.exists() && !force {
        return Err(CliError::Usage(format!(
            "{} already holds an identity; pass --force to replace it, or --identity to write elsewhere",
            path.display()
        )));
    }
    let code = PairingCode::parse(code).map_err(|e| CliError::Usage(format!("--code: {e}")))?;
    let name = match name {
        Some(name) => name.to_string(),
        None => local_hostname(),
    };
    let router = cli.router_addr()?;
    let channel = connect::channel(&router, connect::pairing_tls(&code)?).await?;

    let key = rcgen::KeyPair::generate().map_err(|e| CliError::tls("generating a key", e))?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name.push(rcgen::DnType::CommonName, name.clone());
    let csr = params
        .serialize_request(&key)
        .and_then(|csr| csr.pem())
        .map_err(|e| CliError::tls("certificate request", e))?;

    let response = pb::pki_service_client::PkiServiceClient::new(channel)
        .pair(pb::PairRequest { code: code.to_string(), name: name.clone(), csr_pem: csr })
        .await
        .map_err(|status| CliError::from_status("pairing", &status))?
        .into_inner();
    // The response's CA must be the one the code pinned (and the TLS session proved).
    let ca_der = {
        use rustls_pki_types::{CertificateDer, pem::PemObject};
        CertificateDer::from_pem_slice(response.ca_certificate_pem.as_bytes())
            .map_err(|e| CliError::Tls(format!("the router sent an unreadable CA certificate: {e:?}")))?
    };
    if !code.pins(&routerd_proto::certificate_fingerprint(&ca_der)) {
        return Err(CliError::PairingCodeMismatch { router: router.to_string() });
    }
    let text = identity::to_pem(&name, &response.certificate_pem, &key.serialize_pem(), &response.ca_certificate_pem);
    // Check what we are about to save is usable, so a broken answer is reported now rather than later.
    identity::Identity::from_pem(text.as_bytes()).map_err(|e| CliError::Tls(format!("the router's answer: {e}")))?;
    write_private(&path, text.as_bytes())?;
    let doc = PairDoc { name, router: router.to_string(), identity: path.display().to_string() };
    match cli.output {
        Format::Json => output::print_json(&doc),
        Format::Table => {
            println!("paired as {:?} with {}; identity saved to {}", doc.name, doc.router, doc.identity);
            Ok(())
        }
    }
}

fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "workstation".to_string())
}

/// Writes the identity with mode 0600, so an interrupted write never leaves half a key.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<(), CliError> {
    crate::private_file::write_private(path, bytes).map_err(|e| CliError::Io(format!("{}: {e}", path.display())))
}
