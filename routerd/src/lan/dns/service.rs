//! The DNS service: UDP and TCP port 53 on every LAN interface (never on the uplink), local answers, and
//! forwarding through the cache with rebinding protection.

use std::{
    net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6},
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant, SystemTime},
};

use hickory_proto::op::{Message, ResponseCode};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream, UdpSocket},
    sync::watch,
    task::JoinSet,
};

use super::{
    cache::Cache,
    local::{self, Decision, LocalData},
    upstream,
};
use crate::{
    lan::dhcp4d::Lease,
    supervisor::{ServiceContext, ServiceError, ServiceState},
    system,
    uplink::state::UplinkSnapshot,
};

const PORT: u16 = 53;
const CACHE_ENTRIES: usize = 10_000;
const TCP_IDLE: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct DnsOptions {
    pub lans: Vec<String>,
    pub router_name: String,
    /// Names whose private answers are allowed through (rebinding protection exempts them).
    pub rebind_allowlist: Vec<String>,
    /// Upstream servers from routerd.json; empty means those the uplink learned.
    pub upstreams: Vec<IpAddr>,
}

struct Shared {
    options: DnsOptions,
    local: RwLock<LocalData>,
    cache: Mutex<Cache>,
    upstreams: RwLock<Vec<SocketAddr>>,
}

impl Shared {
    async fn handle(&self, request_bytes: &[u8]) -> Option<Vec<u8>> {
        let request = Message::from_vec(request_bytes).ok()?;
        let decision = {
            let local = self.local.read().unwrap_or_else(|p| p.into_inner());
            local::decide(&request, &local)
        };
        let response = match decision {
            Decision::Answer(answer) => answer,
            Decision::Forward { name, record_type } => {
                let cached = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(
                    &name,
                    record_type,
                    request.metadata.id,
                    Instant::now(),
                );
                match cached {
                    Some(hit) => hit,
                    None => self.forward(&request, &name).await,
                }
            }
        };
        response.to_vec().ok()
    }

    async fn forward(&self, request: &Message, name: &str) -> Message {
        let servers = self.upstreams.read().unwrap_or_else(|p| p.into_inner()).clone();
        let query = &request.queries[0];
        match upstream::resolve(&servers, query).await {
            Ok(mut response) => {
                let dropped = local::drop_rebinding(&mut response, name, &self.options.rebind_allowlist);
                if dropped > 0 {
                    tracing::warn!(
                        "dropped {dropped} answer(s) for {name}: private addresses (DNS rebinding protection)"
                    );
                }
                self.cache.lock().unwrap_or_else(|p| p.into_inner()).put(
                    name,
                    query.query_type(),
                    &response,
                    Instant::now(),
                );
                response.metadata.id = request.metadata.id;
                response.metadata.recursion_available = true;
                response
            }
            Err(error) => {
                tracing::info!("{name}: {error}");
                local::error_response(request, ResponseCode::ServFail)
            }
        }
    }

    fn refresh_local(&self, leases: &[Lease]) {
        let router_addrs: Vec<IpAddr> = system::interface_addresses()
            .unwrap_or_default()
            .into_iter()
            .filter(|(name, addr, _)| {
                self.options.lans.contains(name) && !matches!(addr, IpAddr::V6(v6) if v6.is_unicast_link_local())
            })
            .map(|(_, addr, _)| addr)
            .collect();
        let data = LocalData::build(leases, &self.options.router_name, &router_addrs, SystemTime::now());
        *self.local.write().unwrap_or_else(|p| p.into_inner()) = data;
    }

    fn refresh_upstreams(&self, snapshot: Option<&UplinkSnapshot>) {
        let addrs: Vec<IpAddr> = if !self.options.upstreams.is_empty() {
            self.options.upstreams.clone()
        } else {
            let v4: Vec<IpAddr> = snapshot
                .and_then(|s| s.dhcp4.as_ref())
                .map(|d| d.lease.dns.iter().map(|a| IpAddr::V4(*a)).collect())
                .unwrap_or_default();
            let v6: Vec<IpAddr> = snapshot
                .and_then(|s| s.dhcp6.as_ref())
                .map(|d| d.lease.dns.iter().map(|a| IpAddr::V6(*a)).collect())
                .unwrap_or_default();
            v4.into_iter().chain(v6).collect()
        };
        let servers: Vec<SocketAddr> = addrs.into_iter().map(|a| SocketAddr::new(a, PORT)).collect();
        let mut current = self.upstreams.write().unwrap_or_else(|p| p.into_inner());
        if *current != servers {
            tracing::info!("upstream DNS servers: {servers:?}");
            *current = servers;
        }
    }
}

/// UDP and TCP sockets on port 53 of one interface, for IPv4 and IPv6 alike.
fn sockets(lan: &str) -> std::io::Result<(UdpSocket, TcpListener)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let address = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, PORT, 0, 0));
    let udp = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    let tcp = Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP))?;
    for socket in [&udp, &tcp] {
        socket.set_only_v6(false)?;
        socket.set_reuse_address(true)?;
        socket.bind_device(Some(lan.as_bytes()))?;
        socket.set_nonblocking(true)?;
        socket.bind(&address.into())?;
    }
    tcp.listen(64)?;
    Ok((UdpSocket::from_std(udp.into())?, TcpListener::from_std(tcp.into())?))
}

pub async fn run(
    options: DnsOptions,
    mut leases: watch::Receiver<Vec<Lease>>,
    mut uplink: Option<watch::Receiver<UplinkSnapshot>>,
    mut context: ServiceContext,
) -> Result<(), ServiceError> {
    let shared = Arc::new(Shared {
        options: options.clone(),
        local: RwLock::new(LocalData::default()),
        cache: Mutex::new(Cache::new(CACHE_ENTRIES)),
        upstreams: RwLock::new(Vec::new()),
    });
    shared.refresh_local(&leases.borrow_and_update());
    shared.refresh_upstreams(uplink.as_mut().map(|u| u.borrow_and_update().clone()).as_ref());

    let mut tasks = JoinSet::new();
    for lan in &options.lans {
        let (udp, tcp) = sockets(lan)?;
        let udp = Arc::new(udp);
        let (shared_udp, shared_tcp) = (shared.clone(), shared.clone());
        tasks.spawn(serve_udp(udp, shared_udp));
        tasks.spawn(serve_tcp(tcp, shared_tcp));
    }
    context.report(ServiceState::Running, format!("on {}", options.lans.join(", ")));
    loop {
        tokio::select! {
            _ = context.shutdown.wait() => return Ok(()),
            changed = leases.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                shared.refresh_local(&leases.borrow_and_update());
            }
            Some(snapshot) = next_snapshot(&mut uplink) => {
                shared.refresh_upstreams(Some(&snapshot));
                // The LANs' IPv6 addresses follow the delegated prefix.
                shared.refresh_local(&leases.borrow());
            }
            Some(done) = tasks.join_next() => {
                return Err(format!("a DNS listener stopped: {done:?}").into());
            }
        }
    }
}

async fn next_snapshot(uplink: &mut Option<watch::Receiver<UplinkSnapshot>>) -> Option<UplinkSnapshot> {
    match uplink {
        Some(receiver) => match receiver.changed().await {
            Ok(()) => Some(receiver.borrow_and_update().clone()),
            Err(_) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

async fn serve_udp(socket: Arc<UdpSocket>, shared: Arc<Shared>) {
    let mut buffer = vec![0u8; 4096];
    loop {
        let Ok((len, client)) = socket.recv_from(&mut buffer).await else { continue };
        let request = buffer[..len].to_vec();
        let (socket, shared) = (socket.clone(), shared.clone());
        // Each query on its own task: a slow upstream must not hold up local answers.
        tokio::spawn(async move {
            if let Some(mut response) = shared.handle(&request).await {
                if response.len() > 1232 {
                    response = truncated(&response).unwrap_or(response);
                }
                let _ = socket.send_to(&response, client).await;
            }
        });
    }
}

/// The header and question only, with TC set: the client asks again over TCP.
fn truncated(response: &[u8]) -> Option<Vec<u8>> {
    let message = Message::from_vec(response).ok()?;
    message.truncate().to_vec().ok()
}

async fn serve_tcp(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(TCP_IDLE * 6, serve_connection(stream, shared)).await;
        });
    }
}

async fn serve_connection(mut stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    loop {
        let mut prefix = [0u8; 2];
        if tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut prefix)).await.is_err() {
            return Ok(());
        }
        let mut request = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
        stream.read_exact(&mut request).await?;
        let Some(response) = shared.handle(&request).await else { return Ok(()) };
        let len = u16::try_from(response.len()).unwrap_or(u16::MAX);
        stream.write_all(&len.to_be_bytes()).await?;
        stream.write_all(&response[..usize::from(len)]).await?;
    }
}
