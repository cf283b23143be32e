//! `rtrctl forwards list|add|rm|reload`.

use routerd_proto::v1 as pb;
use serde::Serialize;

use crate::{
    cli::{Cli, ForwardsAction},
    error::CliError,
    output::{self, Format, Table},
};

/// One forward in `rtrctl -o json forwards …` (field names are stable).
#[derive(Debug, Serialize)]
pub struct ForwardDoc {
    pub id: String,
    pub proto: String,
    pub port: String,
    pub dest_addr: String,
    pub dest_port: String,
    pub description: String,
}

fn range_text(range: &Option<pb::PortRange>) -> String {
    match range {
        Some(r) if r.first == r.last => r.first.to_string(),
        Some(r) => format!("{}-{}", r.first, r.last),
        None => String::new(),
    }
}

fn range_arg(text: &str) -> Result<pb::PortRange, CliError> {
    let number = |t: &str| {
        t.trim()
            .parse::<u32>()
            .map_err(|_| CliError::Usage(format!("{text:?} is not a port or a range like 8040-8060")))
    };
    match text.split_once('-') {
        Some((first, last)) => Ok(pb::PortRange { first: number(first)?, last: number(last)? }),
        None => {
            let port = number(text)?;
            Ok(pb::PortRange { first: port, last: port })
        }
    }
}

impl From<pb::PortForward> for ForwardDoc {
    fn from(forward: pb::PortForward) -> Self {
        let proto: Vec<&str> = forward
            .protocols
            .iter()
            .map(|p| match pb::TransportProtocol::try_from(*p) {
                Ok(pb::TransportProtocol::Tcp) => "tcp",
                Ok(pb::TransportProtocol::Udp) => "udp",
                _ => "?",
            })
            .collect();
        ForwardDoc {
            id: forward.id,
            proto: proto.join(","),
            port: range_text(&forward.port),
            dest_addr: forward.dest_addr,
            dest_port: range_text(&forward.dest_port),
            description: forward.description,
        }
    }
}

fn print(cli: &Cli, forwards: Vec<ForwardDoc>) -> Result<(), CliError> {
    match cli.output {
        Format::Json => output::print_json(&forwards),
        Format::Table => {
            let mut table = Table::new(&["ID", "PROTO", "PORT", "TO", "DESCRIPTION"]);
            for f in &forwards {
                table.row(vec![
                    f.id.clone(),
                    f.proto.clone(),
                    f.port.clone(),
                    format!("{}:{}", f.dest_addr, f.dest_port),
                    f.description.clone(),
                ]);
            }
            println!("{}", table.render());
            if forwards.is_empty() {
                println!("(no port forwards)");
            }
            Ok(())
        }
    }
}

pub async fn run(cli: &Cli, action: &ForwardsAction) -> Result<(), CliError> {
    let mut client = pb::port_forward_service_client::PortForwardServiceClient::new(super::connect(cli).await?);
    let status = |what: &'static str| move |status: tonic::Status| CliError::from_status(what, &status);
    match action {
        ForwardsAction::List => {
            let response = client
                .list_port_forwards(pb::ListPortForwardsRequest::default())
                .await
                .map_err(status("forwards list"))?;
            print(cli, response.into_inner().port_forwards.into_iter().map(ForwardDoc::from).collect())
        }
        ForwardsAction::Add { protocol, port, dest_addr, dest_port, description } => {
            let forward = new_forward(protocol, port, dest_addr, dest_port.as_deref(), description)?;
            let response = client
                .create_port_forward(pb::CreatePortForwardRequest { port_forward: Some(forward) })
                .await
                .map_err(status("forwards add"))?;
            print(cli, response.into_inner().port_forward.into_iter().map(ForwardDoc::from).collect())
        }
        ForwardsAction::Update { id, dest_addr, dest_port, description } => {
            let (forward, paths) = changed_forward(id, dest_addr, dest_port, description)?;
            let request = pb::UpdatePortForwardRequest {
                port_forward: Some(forward),
                update_mask: Some(prost_types::FieldMask { paths }),
            };
            let response = client.update_port_forward(request).await.map_err(status("forwards update"))?;
            print(cli, response.into_inner().port_forward.into_iter().map(ForwardDoc::from).collect())
        }
        ForwardsAction::Rm { id } => {
            client
                .delete_port_forward(pb::DeletePortForwardRequest { id: id.clone() })
                .await
                .map_err(status("forwards rm"))?;
            match cli.output {
                Format::Json => output::print_json(&serde_json::json!({ "removed": id })),
                Format::Table => {
                    println!("port forward {id} removed");
                    Ok(())
                }
            }
        }
        ForwardsAction::Reload => {
            let response = client
                .reload_port_forwards(pb::ReloadPortForwardsRequest {})
                .await
                .map_err(status("forwards reload"))?;
            print(cli, response.into_inner().port_forwards.into_iter().map(ForwardDoc::from).collect())
        }
    }
}

/// The forward `forwards add` asks for.
fn new_forward(
    protocol: &str,
    port: &str,
    dest_addr: &str,
    dest_port: Option<&str>,
    description: &str,
) -> Result<pb::PortForward, CliError> {
    let mut protocols = Vec::new();
    for part in protocol.split(',') {
        match part.trim() {
            "tcp" => protocols.push(pb::TransportProtocol::Tcp as i32),
            "udp" => protocols.push(pb::TransportProtocol::Udp as i32),
            other => return Err(CliError::Usage(format!("--protocol {other:?}: use tcp, udp or tcp,udp"))),
        }
    }
    let port = range_arg(port)?;
    let dest_port = match dest_port {
        Some(text) => range_arg(text)?,
        None => port,
    };
    Ok(pb::PortForward {
        id: String::new(),
        protocols,
        port: Some(port),
        dest_addr: dest_addr.to_string(),
        dest_port: Some(dest_port),
        description: description.to_string(),
    })
}

/// The forward `forwards update` sends and the fields it changes.
fn changed_forward(
    id: &str,
    dest_addr: &Option<String>,
    dest_port: &Option<String>,
    description: &Option<String>,
) -> Result<(pb::PortForward, Vec<String>), CliError> {
    let mut paths = Vec::new();
    let mut forward = pb::PortForward { id: id.to_string(), ..pb::PortForward::default() };
    if let Some(addr) = dest_addr {
        forward.dest_addr = addr.clone();
        paths.push("dest_addr".to_string());
    }
    if let Some(port) = dest_port {
        forward.dest_port = Some(range_arg(port)?);
        paths.push("dest_port".to_string());
    }
    if let Some(text) = description {
        forward.description = text.clone();
        paths.push("description".to_string());
    }
    if paths.is_empty() {
        return Err(CliError::Usage("nothing to change: pass --dest-addr, --dest-port or --description".into()));
    }
    Ok((forward, paths))
}
