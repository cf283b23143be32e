//! `rtrctl uplink release|renew`.

use routerd_proto::v1 as pb;
use serde::Serialize;

use crate::{
    cli::{Cli, Family, UplinkAction},
    error::CliError,
    output::{self, Format},
};

/// `rtrctl -o json uplink …`: one line per DHCP client (`results`), and the same typed (`clients`).
#[derive(Debug, Serialize)]
pub struct UplinkDoc {
    pub results: Vec<String>,
    pub clients: Vec<ClientDoc>,
}

#[derive(Debug, Serialize)]
pub struct ClientDoc {
    /// "dhcp4" or "dhcp6".
    pub client: String,
    /// "released", "nothing_to_release", "renewing" or "not_running".
    pub outcome: &'static str,
    /// The lease given back, in one line (only when released).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<String>,
}

impl From<pb::UplinkClientResult> for ClientDoc {
    fn from(result: pb::UplinkClientResult) -> ClientDoc {
        let outcome = match pb::UplinkOutcome::try_from(result.outcome) {
            Ok(pb::UplinkOutcome::Released) => "released",
            Ok(pb::UplinkOutcome::NothingToRelease) => "nothing_to_release",
            Ok(pb::UplinkOutcome::Renewing) => "renewing",
            Ok(pb::UplinkOutcome::NotRunning) => "not_running",
            Ok(pb::UplinkOutcome::Unspecified) | Err(_) => "unknown",
        };
        ClientDoc { client: result.client, outcome, lease: Some(result.lease).filter(|l| !l.is_empty()) }
    }
}

pub async fn run(cli: &Cli, action: &UplinkAction) -> Result<(), CliError> {
    let mut client = pb::system_service_client::SystemServiceClient::new(super::connect(cli).await?);
    let families = |f: &Family| Some(pb::UplinkFamilies { ipv4: f.ipv4, ipv6: f.ipv6 });
    let (results, clients) = match action {
        UplinkAction::Release(f) => client
            .release_uplink(pb::ReleaseUplinkRequest { families: families(f) })
            .await
            .map(|r| r.into_inner())
            .map(|r| (r.results, r.clients))
            .map_err(|status| CliError::from_status("uplink release", &status))?,
        UplinkAction::Renew(f) => client
            .renew_uplink(pb::RenewUplinkRequest { families: families(f) })
            .await
            .map(|r| r.into_inner())
            .map(|r| (r.results, r.clients))
            .map_err(|status| CliError::from_status("uplink renew", &status))?,
    };
    match cli.output {
        Format::Json => {
            output::print_json(&UplinkDoc { results, clients: clients.into_iter().map(Into::into).collect() })
        }
        Format::Table => {
            for line in results {
                println!("{line}");
            }
            Ok(())
        }
    }
}
