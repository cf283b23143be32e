//! The DHCPv4 server service: one UDP socket per LAN (port 67, bound to the interface), the servers, the leases
//! on disk ([`super::persist`]), and the lease table published for the API, DNS and metrics. Every change is on
//! disk before it is announced or acknowledged.

use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    path::PathBuf,
    sync::Arc,
};

use tokio::{net::UdpSocket, sync::mpsc, sync::watch};

use super::{
    PoolConfig, ReplyTo, Server,
    commands::{LeaseCommand, LeaseCommandError, LeaseInbox, LeaseRequest, OfferRequest},
    persist::{self, LeaseStore},
    published::{LeaseSnapshot, Publisher},
};
use crate::{
    counters::Dhcp4ServerMetrics,
    store::StoreError,
    supervisor::{ServiceContext, ServiceError, ServiceState},
};

const SERVER_PORT: u16 = 67;
const CLIENT_PORT: u16 = 68;
/// Requests handled before one flush of the journal.
const MAX_BATCH: usize = 256;

/// A change that cannot be saved stops the server: no ACK goes out for a lease that is not on disk. The
/// supervisor starts it again (with backoff) from the files, so it serves again by itself once there is room.
fn unsaved(error: StoreError) -> ServiceError {
    format!("cannot save the leases, so no lease is acknowledged until it can: {error}").into()
}

struct Dhcp4Service {
    servers: Vec<Server>,
    sockets: Vec<Arc<UdpSocket>>,
    names: Vec<String>,
    store: LeaseStore,
    publisher: Publisher,
    published: watch::Sender<LeaseSnapshot>,
    metrics: Arc<crate::counters::Metrics>,
}

pub(crate) async fn run(
    perm: PathBuf,
    pools: Vec<PoolConfig>,
    published: watch::Sender<LeaseSnapshot>,
    inbox: LeaseInbox,
    metrics: Arc<crate::counters::Metrics>,
    mut context: ServiceContext,
) -> Result<(), ServiceError> {
    let default_interface = pools.first().map(|p| p.interface.clone()).unwrap_or_default();
    // Reading and folding a large table takes a while (100,000 leases: about half a second): not on the runtime's
    // threads, which the uplink needs at start.
    let saved = {
        let (perm, interface) = (perm.clone(), default_interface.clone());
        tokio::task::spawn_blocking(move || persist::load(&perm, &interface))
            .await
            .map_err(|e| ServiceError::from(format!("loading the leases: {e}")))?
            .map_err(unsaved)?
    };
    let servers: Vec<Server> = pools.into_iter().map(|pool| Server::new(pool, saved.iter().cloned())).collect();
    let mut publisher = Publisher::default();
    for server in &servers {
        publisher.update_all(server);
    }
    published.send_replace(publisher.snapshot());
    let store = LeaseStore::open(&perm).map_err(unsaved)?;

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
    drop(saved);
    let mut service = Dhcp4Service { servers, sockets, names, store, publisher, published, metrics };

    loop {
        tokio::select! {
            _ = context.shutdown.wait() => {
                let records = persist::records(&service.servers);
                return service.store.close(records).await.map_err(unsaved);
            }
            error = readers.ended() => return Err(error),
            Some(first) = received.recv() => {
                // Group commit: handle every request already waiting, flush the journal once, then answer.
                // Under load one fsync covers many ACKs; every ACK still goes out only after its lease is on disk.
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match received.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                service.handle_batch(batch).await?;
            }
            request = crate::command_channel::next(&inbox.offers) => {
                let Some(OfferRequest { reply, .. }) = request else { continue };
                let now = crate::clock::now();
                let _ = reply.send(service.servers.iter().flat_map(|s| s.offers(now)).collect());
            }
            request = crate::command_channel::next(&inbox.commands) => {
                let Some(request) = request else { continue };
                service.command(request).await?;
            }
        }
    }
}

impl Dhcp4Service {
    /// A command from the API: applied, saved and published before it is answered; a failure to save ends the
    /// service (the supervisor starts it again from what is on disk).
    async fn command(&mut self, LeaseRequest { command, reply }: LeaseRequest) -> Result<(), ServiceError> {
        if command == LeaseCommand::WriteFile {
            let written = self.store.write_file(persist::records(&self.servers)).await;
            let _ = reply.send(written.map(|()| None).map_err(|e| LeaseCommandError::Failed(e.to_string())));
            return Ok(());
        }
        let result = super::admin::apply_command(&mut self.servers, command, crate::clock::now());
        if let Err(error) = self.commit().await {
            let _ = reply.send(Err(LeaseCommandError::Failed(error.to_string())));
            return Err(error);
        }
        let _ = reply.send(result);
        Ok(())
    }

    async fn handle_batch(&mut self, batch: Vec<(usize, Vec<u8>)>) -> Result<(), ServiceError> {
        let all_metrics = self.metrics.clone();
        let metrics: &Dhcp4ServerMetrics = &all_metrics.dhcp4_server;
        let mut replies = Vec::new();
        for (index, payload) in batch {
            let Some(server) = self.servers.get_mut(index) else { continue };
            if let Some(kind) = crate::dhcp4_wire::message_type(&payload) {
                metrics.received(kind);
            }
            let handled = match server.handle(crate::clock::now(), &payload) {
                Ok(handled) => handled,
                Err(ignored) => {
                    metrics.ignored.inc();
                    tracing::debug!("ignored a DHCP packet on {}: {ignored}", self.names[index]);
                    continue;
                }
            };
            if let Some(note) = &handled.note {
                tracing::info!("{}: {note}", self.names[index]);
            }
            replies.extend(handled.reply.map(|reply| (index, reply)));
        }
        self.commit().await?;
        let offers = self.servers.iter().map(Server::offers_outstanding).sum::<usize>();
        metrics.offers_outstanding.store(offers as u64, std::sync::atomic::Ordering::Relaxed);
        for (index, reply) in replies {
            let target = match reply.to {
                ReplyTo::Broadcast => SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT),
                ReplyTo::Client(addr) => SocketAddrV4::new(addr, CLIENT_PORT),
                ReplyTo::Relay(addr) => SocketAddrV4::new(addr, SERVER_PORT),
            };
            match self.sockets[index].send_to(&reply.payload, SocketAddr::V4(target)).await {
                Ok(_) => metrics.sent(u8::from(reply.message_type)),
                Err(error) => {
                    tracing::warn!("{}: sending {:?} to {target}: {error}", self.names[index], reply.message_type)
                }
            }
        }
        Ok(())
    }

    /// Saves what changed since the last commit (journal, flushed), then publishes it; now and then folds the
    /// journal into `leases.json` in the background.
    async fn commit(&mut self) -> Result<(), ServiceError> {
        let mut lines = Vec::new();
        let mut count = 0;
        let mut changed = Vec::new();
        for (index, server) in self.servers.iter_mut().enumerate() {
            let changes = server.take_changes();
            if changes.is_empty() {
                continue;
            }
            persist::journal_lines(server, &changes.clients, &mut lines);
            count += changes.clients.len();
            changed.push((index, changes.blocks));
        }
        if count == 0 {
            return Ok(());
        }
        self.store.append(&lines, count).map_err(unsaved)?;
        for (index, blocks) in changed {
            self.publisher.update(&self.servers[index], blocks);
        }
        self.published.send_replace(self.publisher.snapshot());
        let leases = self.servers.iter().map(|s| s.leases().len()).sum();
        if self.store.compaction_due(leases)
            && let Err(error) = self.store.compact(persist::records(&self.servers)).await
        {
            tracing::error!("cannot start writing the leases file (the journal keeps every lease): {error}");
        }
        Ok(())
    }
}
