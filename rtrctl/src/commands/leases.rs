//! `rtrctl leases list|set-hostname|static add|rm`.

use routerd_proto::v1 as pb;
use serde::Serialize;

use crate::{
    cli::{Cli, LeaseStateArg, LeasesAction, StaticAction},
    error::CliError,
    output::{self, Format, Table, rfc3339},
};

/// One lease in `rtrctl -o json leases list` (field names are stable: scripts rely on them).
#[derive(Debug, Serialize)]
pub struct LeaseDoc {
    pub addr: String,
    pub hardware_addr: String,
    pub hostname: String,
    pub hostname_override: String,
    pub interface: String,
    pub vendor: String,
    pub state: &'static str,
    pub expires_at: Option<String>,
    pub last_ack: Option<String>,
}

impl From<pb::Lease> for LeaseDoc {
    fn from(lease: pb::Lease) -> Self {
        LeaseDoc {
            state: match pb::LeaseState::try_from(lease.state) {
                Ok(pb::LeaseState::Active) => "active",
                Ok(pb::LeaseState::Expired) => "expired",
                Ok(pb::LeaseState::Static) => "static",
                Ok(pb::LeaseState::Offered) => "offered",
                _ => "unknown",
            },
            expires_at: lease.expires_at.as_ref().map(rfc3339),
            last_ack: lease.last_ack.as_ref().map(rfc3339),
            addr: lease.addr,
            hardware_addr: lease.hardware_addr,
            hostname: lease.hostname,
            hostname_override: lease.hostname_override,
            interface: lease.interface,
            vendor: lease.vendor,
        }
    }
}

type LeaseClient = pb::lease_service_client::LeaseServiceClient<tonic::transport::Channel>;

pub async fn run(cli: &Cli, action: &LeasesAction) -> Result<(), CliError> {
    let mut client = pb::lease_service_client::LeaseServiceClient::new(super::connect(cli).await?);
    match action {
        LeasesAction::List { states } => list(cli, &mut client, states).await,
        LeasesAction::Watch => watch(cli, &mut client).await,
        LeasesAction::SetHostname { mac, name } => {
            let lease =
                pb::Lease { hardware_addr: mac.clone(), hostname_override: name.clone(), ..pb::Lease::default() };
            let mask = prost_types::FieldMask { paths: vec!["hostname_override".into()] };
            let response = client
                .update_lease(pb::UpdateLeaseRequest { lease: Some(lease), update_mask: Some(mask) })
                .await
                .map_err(|status| CliError::from_status("leases set-hostname", &status))?
                .into_inner();
            print_lease(cli, response.lease)
        }
        LeasesAction::Static { action: StaticAction::Add { mac, addr, hostname } } => {
            let request = pb::CreateStaticLeaseRequest {
                hardware_addr: mac.clone(),
                addr: addr.clone(),
                hostname: hostname.clone().unwrap_or_default(),
            };
            let response = client
                .create_static_lease(request)
                .await
                .map_err(|status| CliError::from_status("leases static add", &status))?
                .into_inner();
            print_lease(cli, response.lease)
        }
        LeasesAction::Static { action: StaticAction::Rm { mac } } => {
            client
                .delete_static_lease(pb::DeleteStaticLeaseRequest { hardware_addr: mac.clone() })
                .await
                .map_err(|status| CliError::from_status("leases static rm", &status))?;
            match cli.output {
                Format::Json => output::print_json(&serde_json::json!({ "removed": mac })),
                Format::Table => {
                    println!("static lease of {mac} removed");
                    Ok(())
                }
            }
        }
    }
}

/// `rtrctl leases list`: every page of leases in the wanted states.
async fn list(cli: &Cli, client: &mut LeaseClient, states: &[LeaseStateArg]) -> Result<(), CliError> {
    let states: Vec<i32> = states
        .iter()
        .map(|s| match s {
            LeaseStateArg::Active => pb::LeaseState::Active as i32,
            LeaseStateArg::Expired => pb::LeaseState::Expired as i32,
            LeaseStateArg::Static => pb::LeaseState::Static as i32,
            LeaseStateArg::Offered => pb::LeaseState::Offered as i32,
        })
        .collect();
    let mut leases = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListLeasesRequest { page_size: 0, page_token, states: states.clone() };
        let page = client
            .list_leases(request)
            .await
            .map_err(|status| CliError::from_status("leases list", &status))?
            .into_inner();
        leases.extend(page.leases.into_iter().map(LeaseDoc::from));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    match cli.output {
        Format::Json => output::print_json(&leases),
        Format::Table => {
            let mut table = Table::new(&["ADDRESS", "MAC", "NAME", "LAN", "STATE", "EXPIRES"]);
            for lease in &leases {
                let name = if lease.hostname_override.is_empty() { &lease.hostname } else { &lease.hostname_override };
                table.row(vec![
                    lease.addr.clone(),
                    lease.hardware_addr.clone(),
                    name.clone(),
                    lease.interface.clone(),
                    lease.state.to_string(),
                    lease.expires_at.clone().unwrap_or_else(|| "never".into()),
                ]);
            }
            println!("{}", table.render());
            if leases.is_empty() {
                println!("(no leases)");
            }
            Ok(())
        }
    }
}

/// `rtrctl leases watch`: every lease, then each change, until interrupted.
async fn watch(cli: &Cli, client: &mut LeaseClient) -> Result<(), CliError> {
    let mut stream = client
        .watch_leases(pb::WatchLeasesRequest {})
        .await
        .map_err(|status| CliError::from_status("leases watch", &status))?
        .into_inner();
    while let Some(event) = stream.message().await.map_err(|status| CliError::from_status("leases watch", &status))? {
        let kind = match pb::LeaseEventType::try_from(event.r#type) {
            Ok(pb::LeaseEventType::Existing) => "existing",
            Ok(pb::LeaseEventType::Created) => "created",
            Ok(pb::LeaseEventType::Updated) => "updated",
            Ok(pb::LeaseEventType::Deleted) => "deleted",
            _ => "unknown",
        };
        let Some(lease) = event.lease.map(LeaseDoc::from) else { continue };
        match cli.output {
            Format::Json => {
                let line = serde_json::json!({ "event": kind, "lease": lease });
                println!("{line}");
            }
            Format::Table => {
                let name = if lease.hostname_override.is_empty() { &lease.hostname } else { &lease.hostname_override };
                println!(
                    "{kind:<8} {} {} {} ({}, {})",
                    lease.addr, lease.hardware_addr, name, lease.interface, lease.state
                );
            }
        }
    }
    Ok(())
}

fn print_lease(cli: &Cli, lease: Option<pb::Lease>) -> Result<(), CliError> {
    let Some(lease) = lease.map(LeaseDoc::from) else { return Ok(()) };
    match cli.output {
        Format::Json => output::print_json(&lease),
        Format::Table => {
            let name = if lease.hostname_override.is_empty() { &lease.hostname } else { &lease.hostname_override };
            println!("{} {} {} ({}, {})", lease.addr, lease.hardware_addr, name, lease.interface, lease.state);
            Ok(())
        }
    }
}
