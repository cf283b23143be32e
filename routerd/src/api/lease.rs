//! LeaseService: the DHCPv4 leases on the LANs. Reads come from the lease table the DHCP server publishes;
//! changes go to the server as commands.

use std::time::SystemTime;

use routerd_proto::v1::{self as pb, lease_service_server::LeaseService};
use tokio::sync::watch;

use crate::{
    config::parse_mac,
    lan::dhcp4d::{
        Lease, LeaseSnapshot,
        commands::{LeaseCommand, LeaseCommandError, LeaseControl, Offered},
        format_mac,
    },
};

const DEFAULT_PAGE_SIZE: usize = 100;

#[derive(Clone)]
pub struct LeaseView {
    pub leases: watch::Receiver<LeaseSnapshot>,
    /// `None` when no LAN has an IPv4 address, so no DHCP server runs.
    pub control: Option<LeaseControl>,
}

pub(super) struct LeaseApi {
    view: LeaseView,
}

impl LeaseApi {
    pub(super) fn new(view: LeaseView) -> Self {
        LeaseApi { view }
    }

    async fn offers(&self) -> Result<Vec<Offered>, tonic::Status> {
        match &self.view.control {
            // No DHCP server, so nothing is offered.
            None => Ok(Vec::new()),
            Some(control) => control
                .offers()
                .await
                .map_err(|_| tonic::Status::unavailable("the DHCP server is not running; try again")),
        }
    }

    async fn command(&self, command: LeaseCommand) -> Result<Option<Lease>, tonic::Status> {
        let control = self.view.control.as_ref().ok_or_else(|| {
            tonic::Status::failed_precondition("no LAN has an IPv4 address in interfaces.json, so no DHCP server runs")
        })?;
        control.send(command).await.map_err(|error| match error {
            LeaseCommandError::NotFound(m) => tonic::Status::not_found(m),
            LeaseCommandError::Invalid(m) => tonic::Status::invalid_argument(m),
            LeaseCommandError::Conflict(m) => tonic::Status::already_exists(m),
            LeaseCommandError::Unavailable => tonic::Status::unavailable("the DHCP server is not running; try again"),
            LeaseCommandError::Failed(m) => tonic::Status::unavailable(m),
        })
    }
}

fn mac_argument(field: &str, text: &str) -> Result<[u8; 6], tonic::Status> {
    parse_mac(text).ok_or_else(|| {
        tonic::Status::invalid_argument(format!("{field}: {text:?} is not a MAC address like 02:00:00:00:00:01"))
    })
}

pub(super) fn lease_state(lease: &Lease, now: SystemTime) -> pb::LeaseState {
    if lease.is_static() {
        pb::LeaseState::Static
    } else if lease.expired(now) {
        pb::LeaseState::Expired
    } else {
        pb::LeaseState::Active
    }
}

pub(super) fn lease_to_proto(lease: &Lease, now: SystemTime) -> pb::Lease {
    pb::Lease {
        hardware_addr: format_mac(&lease.hardware_addr),
        addr: lease.addr.to_string(),
        interface: lease.interface.clone(),
        hostname: lease.hostname.clone().unwrap_or_default(),
        hostname_override: lease.hostname_override.clone().unwrap_or_default(),
        // No OUI database and no vendor class stored yet: empty rather than a guess.
        vendor: String::new(),
        state: lease_state(lease, now) as i32,
        expires_at: lease.expiry.map(super::timestamp),
        last_ack: lease.last_ack.map(super::timestamp),
    }
}

fn offer_to_proto(offer: &Offered) -> pb::Lease {
    pb::Lease {
        hardware_addr: format_mac(&offer.mac),
        addr: offer.addr.to_string(),
        interface: offer.interface.clone(),
        state: pb::LeaseState::Offered as i32,
        expires_at: Some(super::timestamp(offer.until)),
        ..Default::default()
    }
}

/// What the generated trait expects of a server stream (with default stubs, tonic boxes every stream).
type WatchStream = tonic::codegen::BoxStream<pb::WatchLeasesResponse>;

#[tonic::async_trait]
impl LeaseService for LeaseApi {
    async fn list_leases(
        &self,
        request: tonic::Request<pb::ListLeasesRequest>,
    ) -> Result<tonic::Response<pb::ListLeasesResponse>, tonic::Status> {
        let request = request.into_inner();
        let page_size = match request.page_size {
            size if size < 0 => return Err(tonic::Status::invalid_argument("page_size must not be negative")),
            0 => DEFAULT_PAGE_SIZE,
            size => size as usize,
        };
        let offset = if request.page_token.is_empty() {
            0
        } else {
            request.page_token.parse::<usize>().map_err(|_| {
                tonic::Status::invalid_argument("page_token: pass the next_page_token of a previous page")
            })?
        };
        let now = crate::clock::now();
        let wanted = |state: pb::LeaseState| request.states.is_empty() || request.states.contains(&(state as i32));
        // Only the page is converted: paging through a large table costs O(table) per page, not more.
        let (mut page, mut matching) = (Vec::new(), 0);
        {
            let leases = self.view.leases.borrow();
            for lease in leases.iter().filter(|l| wanted(lease_state(l, now))) {
                if matching >= offset && page.len() < page_size {
                    page.push(lease_to_proto(lease, now));
                }
                matching += 1;
            }
        }
        if request.states.contains(&(pb::LeaseState::Offered as i32)) {
            for offer in self.offers().await?.iter() {
                if matching >= offset && page.len() < page_size {
                    page.push(offer_to_proto(offer));
                }
                matching += 1;
            }
        }
        let next = offset + page.len();
        let next_page_token = if next < matching { next.to_string() } else { String::new() };
        Ok(tonic::Response::new(pb::ListLeasesResponse { leases: page, next_page_token }))
    }

    async fn get_lease(
        &self,
        request: tonic::Request<pb::GetLeaseRequest>,
    ) -> Result<tonic::Response<pb::GetLeaseResponse>, tonic::Status> {
        let mac = mac_argument("hardware_addr", &request.into_inner().hardware_addr)?;
        let lease = self.view.leases.borrow().iter().find(|l| l.hardware_addr == mac).cloned();
        match lease {
            Some(lease) => Ok(tonic::Response::new(pb::GetLeaseResponse {
                lease: Some(lease_to_proto(&lease, crate::clock::now())),
            })),
            None => Err(tonic::Status::not_found(format!("no lease for {}", format_mac(&mac)))),
        }
    }

    async fn watch_leases(
        &self,
        _request: tonic::Request<pb::WatchLeasesRequest>,
    ) -> Result<tonic::Response<WatchStream>, tonic::Status> {
        let mut receiver = self.view.leases.clone();
        let stream = async_stream_of_changes(move |sender| async move {
            let mut known = receiver.borrow_and_update().clone();
            let now = crate::clock::now();
            for lease in known.iter() {
                let event = pb::WatchLeasesResponse {
                    r#type: pb::LeaseEventType::Existing as i32,
                    lease: Some(lease_to_proto(lease, now)),
                };
                if sender.send(Ok(event)).await.is_err() {
                    return;
                }
            }
            while receiver.changed().await.is_ok() {
                let current = receiver.borrow_and_update().clone();
                let now = crate::clock::now();
                for (kind, lease) in events(&known, &current) {
                    let event =
                        pb::WatchLeasesResponse { r#type: kind as i32, lease: Some(lease_to_proto(lease, now)) };
                    if sender.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
                known = current;
            }
        });
        Ok(tonic::Response::new(stream))
    }

    async fn update_lease(
        &self,
        request: tonic::Request<pb::UpdateLeaseRequest>,
    ) -> Result<tonic::Response<pb::UpdateLeaseResponse>, tonic::Status> {
        let request = request.into_inner();
        let lease = request.lease.ok_or_else(|| tonic::Status::invalid_argument("lease is required"))?;
        let paths = request.update_mask.map(|m| m.paths).unwrap_or_default();
        if paths != ["hostname_override"] {
            return Err(tonic::Status::invalid_argument(format!(
                "update_mask must be [\"hostname_override\"] (the only writable field), not {paths:?}"
            )));
        }
        let mac = mac_argument("lease.hardware_addr", &lease.hardware_addr)?;
        let hostname = (!lease.hostname_override.is_empty()).then_some(lease.hostname_override);
        let updated = self.command(LeaseCommand::SetHostname { mac, hostname }).await?;
        Ok(tonic::Response::new(pb::UpdateLeaseResponse {
            lease: updated.map(|l| lease_to_proto(&l, crate::clock::now())),
        }))
    }

    async fn create_static_lease(
        &self,
        request: tonic::Request<pb::CreateStaticLeaseRequest>,
    ) -> Result<tonic::Response<pb::CreateStaticLeaseResponse>, tonic::Status> {
        let request = request.into_inner();
        let mac = mac_argument("hardware_addr", &request.hardware_addr)?;
        let addr = request
            .addr
            .parse()
            .map_err(|_| tonic::Status::invalid_argument(format!("addr: {:?} is not an IPv4 address", request.addr)))?;
        let hostname = (!request.hostname.is_empty()).then_some(request.hostname);
        let lease = self.command(LeaseCommand::AddStatic { mac, addr, hostname }).await?;
        Ok(tonic::Response::new(pb::CreateStaticLeaseResponse {
            lease: lease.map(|l| lease_to_proto(&l, crate::clock::now())),
        }))
    }

    async fn delete_static_lease(
        &self,
        request: tonic::Request<pb::DeleteStaticLeaseRequest>,
    ) -> Result<tonic::Response<pb::DeleteStaticLeaseResponse>, tonic::Status> {
        let mac = mac_argument("hardware_addr", &request.into_inner().hardware_addr)?;
        self.command(LeaseCommand::RemoveStatic { mac }).await?;
        Ok(tonic::Response::new(pb::DeleteStaticLeaseResponse {}))
    }
}

/// What changed between two lease tables (by hardware address).
/// The watch events from one snapshot to the next (only the blocks that changed are compared).
fn events<'a>(before: &'a LeaseSnapshot, after: &'a LeaseSnapshot) -> Vec<(pb::LeaseEventType, &'a Lease)> {
    after
        .changes_since(before)
        .into_iter()
        .filter_map(|change| match change {
            (None, Some(new)) => Some((pb::LeaseEventType::Created, new)),
            (Some(_), Some(new)) => Some((pb::LeaseEventType::Updated, new)),
            (Some(old), None) => Some((pb::LeaseEventType::Deleted, old)),
            (None, None) => None,
        })
        .collect()
}

/// A stream fed by a task that sends into a channel (ends when the client goes away).
fn async_stream_of_changes<F, Fut>(producer: F) -> WatchStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<pb::WatchLeasesResponse, tonic::Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    tokio::spawn(producer(sender));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver))
}
