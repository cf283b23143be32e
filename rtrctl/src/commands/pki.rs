//! `rtrctl pki rotate-ca`: a new CA for the router, after a leak.

use routerd_proto::v1 as pb;
use serde::Serialize;

use crate::{
    cli::{Cli, PkiAction},
    error::CliError,
    output::{self, Format},
};

#[derive(Debug, Serialize)]
pub struct RotatedDoc {
    pub pairing_code: String,
    pub pairing_code_expires: Option<String>,
    pub ca_fingerprint_sha256: String,
}

pub async fn run(cli: &Cli, action: &PkiAction) -> Result<(), CliError> {
    match action {
        PkiAction::RotateCa { yes } => rotate_ca(cli, *yes).await,
    }
}

async fn rotate_ca(cli: &Cli, yes: bool) -> Result<(), CliError> {
    if !yes {
        return Err(CliError::Usage(
            "rotating the CA locks out every paired device, this one too, until it pairs again; \
             pass --yes to go ahead"
                .into(),
        ));
    }
    let mut client = pb::pki_service_client::PkiServiceClient::new(super::connect(cli).await?);
    let response = client
        .rotate_certificate_authority(pb::RotateCertificateAuthorityRequest {})
        .await
        .map_err(|status| CliError::from_status("pki rotate-ca", &status))?
        .into_inner();
    let doc = RotatedDoc {
        pairing_code: response.pairing_code,
        pairing_code_expires: response.pairing_code_expires.as_ref().map(output::rfc3339),
        ca_fingerprint_sha256: response.ca_fingerprint_sha256,
    };
    match cli.output {
        Format::Json => output::print_json(&doc),
        Format::Table => {
            println!(
                "the router has a new CA (SHA-256 {}); every client identity is invalid now",
                doc.ca_fingerprint_sha256
            );
            println!(
                "pair again, once, until {}: rtrctl --router {} pair {} --force",
                doc.pairing_code_expires.as_deref().unwrap_or("?"),
                cli.router,
                doc.pairing_code
            );
            Ok(())
        }
    }
}
