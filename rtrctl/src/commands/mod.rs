//! One module per command group.

pub mod backup;
pub mod capture;
pub mod diag;
pub mod forwards;
pub mod leases;
pub mod pair;
pub mod ping;
pub mod pki;
pub mod reboot;
pub mod status;
pub mod update;
pub mod uplink;

use routerd_proto::v1 as pb;
use tonic::transport::Channel;

use crate::{cli::Cli, connect, error::CliError};

/// A channel authenticated with the identity from `--identity`.
pub async fn connect(cli: &Cli) -> Result<Channel, CliError> {
    let identity = connect::load_identity(&cli.identity_path())?;
    connect::channel(&cli.router_addr()?, connect::identity_tls(&identity)?).await
}

/// `GetStatus` over an authenticated channel.
pub async fn get_status(channel: Channel) -> Result<pb::GetStatusResponse, CliError> {
    pb::system_service_client::SystemServiceClient::new(channel)
        .get_status(pb::GetStatusRequest {})
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| CliError::from_status("status", &status))
}
