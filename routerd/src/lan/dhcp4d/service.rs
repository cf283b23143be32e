//! The DHCPv4 server service: one UDP socket per LAN (port 67, bound to the interface), the servers, the lease
//! file, and the lease table published for the API (and DNS). Every change is written to `dhcp4d/leases.json`
//! before it is announced.

use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    path::{Path, PathBuf},
    sync::Arc,
};

use tokio::{sync::mpsc, sync::watch};

use super::{Lease, LeaseRecord, PoolConfig, ReplyTo, Server, format_mac};
use crate::{
    lan::{
        commands::{LeaseCommand, LeaseCommandError, LeaseInbox, LeaseRequest, OfferRequest},
        hostname,
    },
    store::{self, Mode},
    supervisor::{ServiceContext, ServiceError, ServiceState},
};

const SERVER_PORT: u16 = 67;
const CLIENT_PORT: u16 = 68;
/// Requests handled before one write of the lease file.
const MAX_BATCH: usize = 256;

pub fn leases_path(perm: &Path) -> PathBuf {
    perm.join("dhcp4d").join("leases.json")
}

/// The saved leases. Entries that cannot be read are reported and skipped; a file that is not JSON at all is
/// kept aside as `leases.json.unreadable` (never overwritten) and the server starts empty.
pub fn load_leases(perm: &Path, default_interface: &str) -> Vec<Lease> {
    let path = leases_path(perm);
    match store::read_json_optional::<Vec<LeaseRecord>>(&path) {
        Ok(records) => records
            .unwrap_or_default()
            .iter()
            .filter_map(|record| {
                record
                    .to_lease(default_interface)
                    .inspect_err(|problem| tracing::warn!("{}: skipping a lease: {problem}", path.display()))
                    .ok()
            })
            .collect(),
        Err(error) => {
            let aside = path.with_extension("json.unreadable");
            tracing::error!("{error}; keeping it as {} and starting with no leases", aside.display());
            if let Err(error) = std::fs::rename(&path, &aside) {
                tracing::error!("moving {} aside: {error}", path.display());
            }
            Vec::new()
        }
    }
}

fn save_leases(perm: &Path, servers: &[Server]) -> Result<Vec<Lease>, store::StoreError> {
    let mut leases: Vec<Lease> = servers.iter().flat_map(|s| s.leases().iter().cloned()).collect();
    leases.sort_by_key(|l| (l.interface.clone(), l.addr));
    let records: Vec<LeaseRecord> = leases.iter().map(LeaseRecord::from_lease).collect();
    store::write_json(&leases_path(perm), &records, Mode::Public)?;
    Ok(leases)
}

/// A lease file that cannot be written stops the server: no ACK goes out for a lease that is not on disk. The
/// supervisor starts it again (with backoff) from the file, so it serves again by itself once there is room.
fn unsaved(error: store::StoreError) -> ServiceError {
    format!("cannot save the leases, so no lease is acknowledged until it can: {error}").into()
}

pub async fn run(
    perm: PathBuf,
    pools: Vec<PoolConfig>,
    published: watch::Sender<Vec<Lease>>,
    inbox: LeaseInbox,
    metrics: Arc<crate::metrics::Metrics>,
    mut context: ServiceContext,
) -> Result<(), ServiceError> {
    let metrics = &metrics.dhcp4_server;
    let default_interface = pools.first().map(|p| p.interface.clone()).unwrap_or_default();
    let saved = load_leases(&perm, &default_interface);
    let mut servers: Vec<Server> = pools.into_iter().map(|pool| Server::new(pool, saved.clone())).collect();
    published.send_replace(servers.iter().flat_map(|s| s.leases().iter().cloned()).collect());

    let mut sockets = Vec::new();
    for server in &servers {
        sockets.push(Arc::new(crate::device_socket::udp_v4(&server.config().interface, SERVER_PORT)?));
    }
    let (packets, mut received) = mpsc::channel::<(usize, Vec<u8>)>(256);
    let mut readers =
        crate::device_socket::Readers::spawn("DHCPv4 server", &sockets, packets, |payload, _| Some(payload.to_vec()));
    let names: Vec<String> = servers.iter().map(|s| s.config().interface.clone()).collect();
    context.report(ServiceState::Running, format!("serving {}", names.join(", ")));
    tracing::info!("DHCPv4 server on {} with {} saved leases", names.join(", "), saved.len());

    loop {
        tokio::select! {
            _ = context.shutdown.wait() => return Ok(()),
            error = readers.ended() => return Err(error),
            Some(first) = received.recv() => {
                // Group commit: handle every request already waiting, write the lease file once, then answer.
                // Under load one fsync covers many ACKs; every ACK still goes out only after its lease is on disk.
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match received.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let mut changed = false;
                let mut replies = Vec::new();
                for (index, payload) in batch {
                    let Some(server) = servers.get_mut(index) else { continue };
                    if let Some(kind) = crate::dhcp4_wire::message_type(&payload) {
                        metrics.received(kind);
                    }
                    let handled = match server.handle(crate::clock::now(), &payload) {
                        Ok(handled) => handled,
                        Err(ignored) => {
                            metrics.ignored.inc();
                            tracing::debug!("ignored a DHCP packet on {}: {ignored}", names[index]);
                            continue;
                        }
                    };
                    if let Some(note) = &handled.note {
                        tracing::info!("{}: {note}", names[index]);
                    }
                    changed |= handled.changed;
                    replies.extend(handled.reply.map(|reply| (index, reply)));
                }
                if changed {
                    published.send_replace(save_leases(&perm, &servers).map_err(unsaved)?);
                }
                let offers = servers.iter().map(Server::offers_outstanding).sum::<usize>();
                metrics.offers_outstanding.store(offers as u64, std::sync::atomic::Ordering::Relaxed);
                for (index, reply) in replies {
                    let target = match reply.to {
                        ReplyTo::Broadcast => SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT),
                        ReplyTo::Client(addr) => SocketAddrV4::new(addr, CLIENT_PORT),
                        ReplyTo::Relay(addr) => SocketAddrV4::new(addr, SERVER_PORT),
                    };
                    match sockets[index].send_to(&reply.payload, SocketAddr::V4(target)).await {
                        Ok(_) => metrics.sent(u8::from(reply.message_type)),
                        Err(error) => tracing::warn!("{}: sending {:?} to {target}: {error}", names[index], reply.message_type),
                    }
                }
            }
            request = crate::command_channel::next(&inbox.offers) => {
                let Some(OfferRequest { reply, .. }) = request else { continue };
                let now = crate::clock::now();
                let _ = reply.send(servers.iter().flat_map(|s| s.offers(now)).collect());
            }
            request = crate::command_channel::next(&inbox.commands) => {
                let Some(LeaseRequest { command, reply }) = request else { continue };
                let result = apply_command(&mut servers, command);
                if result.is_ok() {
                    match save_leases(&perm, &servers) {
                        Ok(leases) => {
                            published.send_replace(leases);
                        }
                        Err(error) => {
                            let error = unsaved(error);
                            let _ = reply.send(Err(LeaseCommandError::Failed(error.to_string())));
                            return Err(error);
                        }
                    }
                }
                let _ = reply.send(result);
            }
        }
    }
}

fn apply_command(servers: &mut [Server], command: LeaseCommand) -> Result<Option<Lease>, LeaseCommandError> {
    match command {
        LeaseCommand::SetHostname { mac, hostname: name } => {
            let label = match name {
                Some(name) => Some(hostname::sanitize(&name).ok_or_else(|| {
                    LeaseCommandError::Invalid(format!("{name:?} has no letters or digits to make a DNS name of"))
                })?),
                None => None,
            };
            let server = servers
                .iter_mut()
                .find(|s| s.leases().by_mac(&mac).is_some())
                .ok_or_else(|| LeaseCommandError::NotFound(format!("no lease for {}", format_mac(&mac))))?;
            let mut lease = server.leases().by_mac(&mac).cloned().ok_or(LeaseCommandError::Unavailable)?;
            lease.hostname_override = label;
            server.leases_mut().insert(lease.clone());
            tracing::info!("name of {} set to {:?}", format_mac(&mac), lease.name());
            Ok(Some(lease))
        }
        LeaseCommand::AddStatic { mac, addr, hostname: name } => {
            let server = servers.iter_mut().find(|s| s.config().contains_host(addr)).ok_or_else(|| {
                LeaseCommandError::Invalid(format!("{addr} is not a host address of any LAN's subnet"))
            })?;
            if addr == server.config().server_addr {
                return Err(LeaseCommandError::Invalid(format!("{addr} is the router's own address")));
            }
            if let Some(other) = server.leases().by_addr(addr).filter(|l| l.hardware_addr != mac)
                && (other.is_static() || !other.expired(crate::clock::now()))
            {
                return Err(LeaseCommandError::Conflict(format!(
                    "{addr} is leased to {}{}; remove that lease first",
                    format_mac(&other.hardware_addr),
                    if other.is_static() { " (static)" } else { "" }
                )));
            }
            let previous = server.leases().by_mac(&mac).cloned();
            let lease = Lease {
                num: addr.to_bits().saturating_sub(server.config().first.to_bits()),
                addr,
                hardware_addr: mac,
                hostname: name
                    .as_deref()
                    .and_then(hostname::sanitize)
                    .or(previous.as_ref().and_then(|p| p.hostname.clone())),
                hostname_override: previous.as_ref().and_then(|p| p.hostname_override.clone()),
                expiry: None,
                last_ack: previous.and_then(|p| p.last_ack),
                interface: server.config().interface.clone(),
            };
            server.leases_mut().insert(lease.clone());
            tracing::info!("static lease {addr} for {}", format_mac(&mac));
            Ok(Some(lease))
        }
        LeaseCommand::RemoveStatic { mac } => {
            let server = servers
                .iter_mut()
                .find(|s| s.leases().by_mac(&mac).is_some_and(Lease::is_static))
                .ok_or_else(|| LeaseCommandError::NotFound(format!("no static lease for {}", format_mac(&mac))))?;
            server.leases_mut().remove(&mac);
            tracing::info!("static lease for {} removed", format_mac(&mac));
            Ok(None)
        }
    }
}
