//! PortForwardService: the port forwards, as router7's portforwardings.json entries. Changes go to the firewall
//! service, which applies them before it saves them.

use routerd_proto::v1::{self as pb, port_forward_service_server::PortForwardService};

use crate::{
    config::{
        PortForwarding,
        forwards::{Forward, Protocols},
    },
    firewall::service::{ForwardCommand, ForwardControl, ForwardError, Forwards},
};

pub(super) struct PortForwardApi {
    control: Option<ForwardControl>,
}

impl PortForwardApi {
    pub(super) fn new(control: Option<ForwardControl>) -> Self {
        PortForwardApi { control }
    }

    async fn command(&self, command: ForwardCommand) -> Result<Forwards, tonic::Status> {
        let control = self.control.as_ref().ok_or_else(|| {
            tonic::Status::failed_precondition("this router has no firewall (no uplink0 or no LAN in interfaces.json)")
        })?;
        control.send(command).await.map_err(|error| match error {
            ForwardError::Invalid(m) => tonic::Status::invalid_argument(m),
            ForwardError::NotFound(m) => tonic::Status::not_found(m),
            ForwardError::Conflict(m) => tonic::Status::already_exists(m),
            ForwardError::Failed(m) => tonic::Status::internal(m),
            ForwardError::Unavailable => tonic::Status::unavailable("the firewall service is not running; try again"),
        })
    }
}

fn ports(range: &Option<pb::PortRange>) -> String {
    match range {
        Some(r) if r.first == r.last || r.last == 0 => r.first.to_string(),
        Some(r) => format!("{}-{}", r.first, r.last),
        None => String::new(),
    }
}

fn to_entry(forward: pb::PortForward) -> Result<PortForwarding, tonic::Status> {
    let mut protocols = Vec::new();
    for protocol in &forward.protocols {
        match pb::TransportProtocol::try_from(*protocol) {
            Ok(pb::TransportProtocol::Tcp) => protocols.push("tcp"),
            Ok(pb::TransportProtocol::Udp) => protocols.push("udp"),
            _ => return Err(tonic::Status::invalid_argument("protocols: use TCP and/or UDP")),
        }
    }
    if protocols.is_empty() {
        return Err(tonic::Status::invalid_argument("protocols: at least one of TCP and UDP"));
    }
    Ok(PortForwarding {
        proto: protocols.join(","),
        port: ports(&forward.port),
        dest_addr: forward.dest_addr,
        dest_port: ports(&forward.dest_port),
        description: forward.description,
    })
}

fn to_proto((id, entry): &(String, PortForwarding)) -> Option<pb::PortForward> {
    let forward = Forward::parse(entry).ok()?;
    let range =
        |r: &std::ops::RangeInclusive<u16>| pb::PortRange { first: u32::from(*r.start()), last: u32::from(*r.end()) };
    let protocols = match forward.protocols {
        Protocols::Tcp => vec![pb::TransportProtocol::Tcp as i32],
        Protocols::Udp => vec![pb::TransportProtocol::Udp as i32],
        Protocols::Both => vec![pb::TransportProtocol::Tcp as i32, pb::TransportProtocol::Udp as i32],
    };
    Some(pb::PortForward {
        id: id.clone(),
        protocols,
        port: Some(range(&forward.ports)),
        dest_addr: forward.dest_addr.to_string(),
        dest_port: Some(range(&forward.dest_ports)),
        description: entry.description.clone(),
    })
}

#[tonic::async_trait]
impl PortForwardService for PortForwardApi {
    async fn list_port_forwards(
        &self,
        request: tonic::Request<pb::ListPortForwardsRequest>,
    ) -> Result<tonic::Response<pb::ListPortForwardsResponse>, tonic::Status> {
        let request = request.into_inner();
        if request.page_size < 0 {
            return Err(tonic::Status::invalid_argument("page_size must not be negative"));
        }
        if !request.page_token.is_empty() {
            return Err(tonic::Status::invalid_argument("page_token: every forward fits on the first page"));
        }
        let forwards = match &self.control {
            Some(_) => self.command(ForwardCommand::List).await?,
            None => Vec::new(),
        };
        Ok(tonic::Response::new(pb::ListPortForwardsResponse {
            port_forwards: forwards.iter().filter_map(to_proto).collect(),
            next_page_token: String::new(),
        }))
    }

    async fn get_port_forward(
        &self,
        request: tonic::Request<pb::GetPortForwardRequest>,
    ) -> Result<tonic::Response<pb::GetPortForwardResponse>, tonic::Status> {
        let id = request.into_inner().id;
        let forwards = self.command(ForwardCommand::List).await?;
        let found = forwards.iter().find(|(other, _)| *other == id).and_then(to_proto);
        match found {
            Some(forward) => Ok(tonic::Response::new(pb::GetPortForwardResponse { port_forward: Some(forward) })),
            None => Err(tonic::Status::not_found(format!("no port forward {id}"))),
        }
    }

    async fn create_port_forward(
        &self,
        request: tonic::Request<pb::CreatePortForwardRequest>,
    ) -> Result<tonic::Response<pb::CreatePortForwardResponse>, tonic::Status> {
        let forward = request
            .into_inner()
            .port_forward
            .ok_or_else(|| tonic::Status::invalid_argument("port_forward is required"))?;
        let entry = to_entry(forward)?;
        let id = Forward::parse(&entry).map(|f| crate::firewall::service::forward_id(&f)).ok();
        let forwards = self.command(ForwardCommand::Create(entry)).await?;
        let created = forwards.iter().find(|(other, _)| Some(other) == id.as_ref()).and_then(to_proto);
        Ok(tonic::Response::new(pb::CreatePortForwardResponse { port_forward: created }))
    }

    async fn update_port_forward(
        &self,
        request: tonic::Request<pb::UpdatePortForwardRequest>,
    ) -> Result<tonic::Response<pb::UpdatePortForwardResponse>, tonic::Status> {
        let request = request.into_inner();
        let update = request.port_forward.ok_or_else(|| tonic::Status::invalid_argument("port_forward is required"))?;
        let paths = request.update_mask.map(|m| m.paths).unwrap_or_default();
        const WRITABLE: [&str; 3] = ["dest_addr", "dest_port", "description"];
        if paths.is_empty() || paths.iter().any(|p| !WRITABLE.contains(&p.as_str())) {
            return Err(tonic::Status::invalid_argument(format!(
                "update_mask: name fields among {WRITABLE:?} (protocols and port identify the forward), not {paths:?}"
            )));
        }
        let forwards = self.command(ForwardCommand::List).await?;
        let (_, current) = forwards
            .iter()
            .find(|(id, _)| *id == update.id)
            .ok_or_else(|| tonic::Status::not_found(format!("no port forward {}", update.id)))?;
        let mut entry = current.clone();
        for path in &paths {
            match path.as_str() {
                "dest_addr" => entry.dest_addr = update.dest_addr.clone(),
                "dest_port" => entry.dest_port = ports(&update.dest_port),
                _ => entry.description = update.description.clone(),
            }
        }
        let forwards = self.command(ForwardCommand::Update(update.id.clone(), entry)).await?;
        let updated = forwards.iter().find(|(id, _)| *id == update.id).and_then(to_proto);
        Ok(tonic::Response::new(pb::UpdatePortForwardResponse { port_forward: updated }))
    }

    async fn delete_port_forward(
        &self,
        request: tonic::Request<pb::DeletePortForwardRequest>,
    ) -> Result<tonic::Response<pb::DeletePortForwardResponse>, tonic::Status> {
        self.command(ForwardCommand::Delete(request.into_inner().id)).await?;
        Ok(tonic::Response::new(pb::DeletePortForwardResponse {}))
    }

    async fn reload_port_forwards(
        &self,
        _request: tonic::Request<pb::ReloadPortForwardsRequest>,
    ) -> Result<tonic::Response<pb::ReloadPortForwardsResponse>, tonic::Status> {
        let forwards = self.command(ForwardCommand::Reload).await?;
        Ok(tonic::Response::new(pb::ReloadPortForwardsResponse {
            port_forwards: forwards.iter().filter_map(to_proto).collect(),
        }))
    }
}
