//! `rtrctl uplink release|renew`.

use routerd_proto::v1 as pb;
use serde::Serialize;

use crate::{
    cli::{Cli, Families, UplinkAction},
    error::CliError,
    output::{self, Format},
};

/// `rtrctl -o json uplink …`: one line per DHCP client.
#[derive(Debug, Serialize)]
pub struct UplinkDoc {
    pub results: Vec<String>,
}

pub async fn run(cli: &Cli, action: &UplinkAction) -> Result<(), CliError> {
    let mut client = pb::system_service_client::SystemServiceClient::new(super::connect(cli).await?);
    let families = |f: &Families| Some(pb::UplinkFamilies { ipv4: f.ipv4, ipv6: f.ipv6 });
    let results = match action {
        UplinkAction::Release(f) => client
            .release_uplink(pb::ReleaseUplinkRequest { families: families(f) })
            .await
            .map(|r| r.into_inner().results)
            .map_err(|status| CliError::from_status("uplink release", &status))?,
        UplinkAction::Renew(f) => client
            .renew_uplink(pb::RenewUplinkRequest { families: families(f) })
            .await
            .map(|r| r.into_inner().results)
            .map_err(|status| CliError::from_status("uplink renew", &status))?,
    };
    match cli.output {
        Format::Json => output::print_json(&UplinkDoc { results }),
        Format::Table => {
            for line in results {
                println!("{line}");
            }
            Ok(())
        }
    }
}
