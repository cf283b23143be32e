//! The DNS service: UDP and TCP port 53 on every LAN interface (never on the uplink), local answers, and
//! forwarding through the cache with rebinding protection.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6},
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use hickory_proto::{
    op::{Message, ResponseCode},
    rr::RecordType,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    sync::watch,
    task::JoinSet,
};

use super::{
    cache::Cache,
    local::{self, Decision, LocalData},
    udp::UdpThread,
    upstream,
};
use crate::{
    lan::dhcp4d::LeaseSnapshot,
    netconfig::Applied,
    supervisor::{ServiceContext, ServiceError, ServiceState},
    uplink::state::UplinkSnapshot,
};

const PORT: u16 = 53;
const TCP_IDLE: Duration = Duration::from_secs(10);

async fn sleep_until_due(due: Option<tokio::time::Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

#[derive(Clone, Debug)]
pub(crate) struct DnsOptions {
    pub lans: Vec<String>,
    pub router_name: String,
    /// Names whose private answers are allowed through (rebinding protection exempts them).
    pub rebind_allowlist: Vec<String>,
    /// Upstream servers from routerd.json; empty means those the uplink learned.
    pub upstreams: Vec<IpAddr>,
    pub metrics: Arc<crate::counters::Metrics>,
    /// The cache's size in bytes (routerd.json `dns_cache_bytes`).
    pub cache_bytes: usize,
    /// Queries a second one device may send (routerd.json `dns_queries_per_second_per_device`).
    pub queries_per_device: u32,
    /// Queries of one device that may wait for an upstream (routerd.json `dns_waiting_per_device`).
    pub waiting_per_device: usize,
    /// What netconfig applied: the router's addresses on the LANs, the house's own networks. `None` when
    /// netlink is not available; the LANs' addresses are then read from the kernel.
    pub applied: Option<watch::Receiver<Applied>>,
}

pub(super) struct Shared {
    pub(super) options: DnsOptions,
    local: RwLock<LocalData>,
    cache: Mutex<Cache>,
    upstreams: RwLock<Vec<SocketAddr>>,
    /// The house's own public networks (delegated prefixes, the uplink's addresses), for rebinding protection.
    inside: RwLock<Vec<(IpAddr, u8)>>,
    /// Questions being asked upstream now: the same question from other clients waits for that answer instead
    /// of going upstream again.
    pending: Mutex<Pending>,
    /// Queries waiting for an upstream, in all and per client: one device cannot take every slot.
    pub(super) waiting: Arc<crate::limits::ConnectionLimit>,
    /// Queries per second per client ([`DnsOptions::queries_per_device`]).
    pub(super) budget: crate::limits::RateLimit,
}

/// What one LAN device may ask per second (in bursts of twice that): far above what a household's devices, or a
/// resolver of its own behind routerd, ask; a flooding device's excess costs a table lookup each.
pub(crate) const QUERIES_PER_SECOND_PER_DEVICE: u32 = 500;

/// Questions asked upstream now, by (name, type), each with the answer to come.
type Pending = HashMap<(String, RecordType), watch::Receiver<Option<Message>>>;

/// Queries that may wait for an upstream at once, and from one client. Beyond that a client's queries are
/// dropped (it asks again), so a flood from one device leaves room for the others.
const MAX_WAITING: usize = *crate::config::DNS_WAITING_PER_DEVICE.end();
pub(crate) const WAITING_PER_DEVICE: usize = 64;

/// Removes a question from the pending ones when its asker is done, also when it is cancelled.
struct PendingGuard<'a> {
    pending: &'a Mutex<Pending>,
    key: (String, RecordType),
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.key);
    }
}

/// The cache key ([`cache::key`]) of a plain query (one IN question, a name that is not local) in `key`, read
/// straight from the bytes; returns where the question ends.
pub(super) fn forwardable_key(request: &[u8], key: &mut Vec<u8>) -> Option<usize> {
    let header = request.get(..12)?;
    let flags = u16::from_be_bytes([header[2], header[3]]);
    let counts = |at: usize| u16::from_be_bytes([header[at], header[at + 1]]);
    // A query (QR 0) with opcode QUERY, one question, no answers or authorities, at most an OPT record.
    if flags & 0xf800 != 0 || counts(4) != 1 || counts(6) != 0 || counts(8) != 0 || counts(10) > 1 {
        return None;
    }
    key.clear();
    let mut at = 12;
    loop {
        let len = usize::from(*request.get(at)?);
        if len == 0 {
            at += 1;
            break;
        }
        if len > 63 || key.len() + len > 253 {
            return None;
        }
        let label = request.get(at + 1..at + 1 + len)?;
        // Other bytes (a dot inside a label, non-ASCII) are escaped in the names the cache is filled with: such
        // a query takes the slow path, so two different names can never share a key.
        if !label.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_') {
            return None;
        }
        if !key.is_empty() {
            key.push(b'.');
        }
        key.extend(label.iter().map(u8::to_ascii_lowercase));
        at += 1 + len;
    }
    let local = local::may_answer_locally(key, local::LOCAL_DOMAIN);
    let record_type = request.get(at..at + 2)?;
    let class = u16::from_be_bytes([*request.get(at + 2)?, *request.get(at + 3)?]);
    if class != 1 || local {
        return None;
    }
    key.extend_from_slice(record_type);
    Some(at + 4)
}

impl Shared {
    /// The answer to one query, from wherever it comes.
    pub(super) async fn handle(&self, request_bytes: &[u8]) -> Option<Vec<u8>> {
        // The common case first: an answer in the cache, served without decoding or encoding a message.
        let (mut key, mut answer) = (Vec::new(), Vec::new());
        if let Some(question_end) = forwardable_key(request_bytes, &mut key)
            && self.cached(&key, request_bytes, question_end, &mut answer)
        {
            return Some(answer);
        }
        self.handle_uncached(request_bytes).await
    }

    /// The cached answer to `request` (whose [`forwardable_key`] is `key`) in `out`, if there is one.
    pub(super) fn cached(&self, key: &[u8], request: &[u8], question_end: usize, out: &mut Vec<u8>) -> bool {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let hit = cache.get_encoded(key, request, question_end, Instant::now(), out);
        if hit {
            self.options.metrics.dns.cache_hit.inc();
        }
        hit
    }

    /// The answer to a query that is not a plain cache hit: local, forwarded, or an error.
    pub(super) async fn handle_uncached(&self, request_bytes: &[u8]) -> Option<Vec<u8>> {
        let request = Message::from_vec(request_bytes).ok()?;
        let decision = {
            let local = self.local.read().unwrap_or_else(|p| p.into_inner());
            local::decide(&request, &local)
        };
        let metrics = &self.options.metrics.dns;
        let response = match decision {
            Decision::Answer(answer) => {
                metrics.local.inc();
                answer
            }
            Decision::Forward { name, record_type } => {
                let cached = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(
                    &name,
                    record_type,
                    request.metadata.id,
                    Instant::now(),
                );
                match cached {
                    Some(hit) => {
                        metrics.cache_hit.inc();
                        hit
                    }
                    None => self.forward(&request, &name).await,
                }
            }
        };
        response.to_vec().ok()
    }

    /// The upstream's answer to `request`, asked once for every client asking the same question meanwhile.
    async fn forward(&self, request: &Message, name: &str) -> Message {
        let key = (name.to_string(), request.queries[0].query_type());
        let joined = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            match pending.get(&key) {
                Some(receiver) => Err(receiver.clone()),
                None => {
                    let (sender, receiver) = watch::channel(None);
                    pending.insert(key.clone(), receiver);
                    Ok(sender)
                }
            }
        };
        match joined {
            Ok(sender) => {
                let _guard = PendingGuard { pending: &self.pending, key };
                let response = self.ask_upstream(request, name).await;
                let _ = sender.send(Some(response.clone()));
                response
            }
            Err(mut receiver) => {
                self.options.metrics.dns.joined.inc();
                match receiver.wait_for(Option::is_some).await.map(|r| r.clone()) {
                    Ok(Some(mut response)) => {
                        response.metadata.id = request.metadata.id;
                        response.queries = request.queries.clone();
                        response
                    }
                    _ => local::error_response(request, ResponseCode::ServFail),
                }
            }
        }
    }

    async fn ask_upstream(&self, request: &Message, name: &str) -> Message {
        let servers = self.upstreams.read().unwrap_or_else(|p| p.into_inner()).clone();
        let query = &request.queries[0];
        let metrics = &self.options.metrics.dns;
        let started = Instant::now();
        match upstream::resolve(&servers, query).await {
            Ok(mut response) => {
                metrics.upstream_latency.observe(started.elapsed());
                let inside = self.inside.read().unwrap_or_else(|p| p.into_inner()).clone();
                let dropped = local::drop_rebinding(&mut response, name, &self.options.rebind_allowlist, &inside);
                if dropped == 0 {
                    metrics.upstream.inc();
                } else {
                    metrics.rebinding_blocked.inc();
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
                metrics.failed.inc();
                tracing::info!("{name}: {error}");
                local::error_response(request, ResponseCode::ServFail)
            }
        }
    }

    fn refresh_local(&self, leases: &LeaseSnapshot) {
        let router_addrs: Vec<IpAddr> = match &self.options.applied {
            Some(applied) => applied.borrow().addresses_on(&self.options.lans),
            None => crate::sys::interfaces::addresses()
                .unwrap_or_default()
                .into_iter()
                .filter(|(name, addr, _)| {
                    self.options.lans.contains(name) && !matches!(addr, IpAddr::V6(v6) if v6.is_unicast_link_local())
                })
                .map(|(_, addr, _)| addr)
                .collect(),
        };
        let data = LocalData::build(leases.iter(), &self.options.router_name, &router_addrs, crate::clock::now());
        *self.local.write().unwrap_or_else(|p| p.into_inner()) = data;
    }

    /// The house's own networks, as netconfig applied them (none without netconfig: no uplink runs then).
    fn refresh_inside(&self) {
        let inside = self.options.applied.as_ref().map(|a| a.borrow().own_networks()).unwrap_or_default();
        *self.inside.write().unwrap_or_else(|p| p.into_inner()) = inside;
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

/// UDP sockets and a TCP listener on port 53 of one interface. UDP has a set of sockets per family sharing the
/// port (the kernel spreads clients over them by address and port, so one flooding client fills only its own
/// socket's buffer), IPv4 apart from IPv6: an IPv4 answer sent through a dual-stack socket goes through the IPv6
/// send path first, which on a cached answer is a measurable part of the work. TCP takes both families on one
/// listener.
fn sockets(lan: &str) -> std::io::Result<(Vec<std::net::UdpSocket>, TcpListener)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let prepare = |domain: Domain, kind: Type, protocol: Protocol| -> std::io::Result<Socket> {
        let socket = Socket::new(domain, kind, Some(protocol))?;
        let address = if domain == Domain::IPV4 {
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT))
        } else {
            // UDP's IPv6 sockets take IPv6 only; TCP's listener takes both families.
            socket.set_only_v6(kind == Type::DGRAM)?;
            SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, PORT, 0, 0))
        };
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.bind_device(Some(lan.as_bytes()))?;
        socket.set_nonblocking(true)?;
        socket.bind(&address.into())?;
        Ok(socket)
    };
    let parallel = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(8, 16);
    let mut udp = Vec::new();
    for domain in [Domain::IPV4, Domain::IPV6] {
        for _ in 0..parallel {
            let socket = prepare(domain, Type::DGRAM, Protocol::UDP)?;
            // Room for a burst while the service catches up (the kernel caps it at net.core.rmem_max).
            let _ = socket.set_recv_buffer_size(1 << 20);
            udp.push(socket.into());
        }
    }
    let tcp = prepare(Domain::IPV6, Type::STREAM, Protocol::TCP)?;
    tcp.listen(64)?;
    Ok((udp, TcpListener::from_std(tcp.into())?))
}

pub(crate) async fn run(
    options: DnsOptions,
    mut leases: watch::Receiver<LeaseSnapshot>,
    mut uplink: Option<watch::Receiver<UplinkSnapshot>>,
    context: ServiceContext,
) -> Result<(), ServiceError> {
    let shared = Arc::new(Shared {
        options: options.clone(),
        local: RwLock::new(LocalData::default()),
        cache: Mutex::new(Cache::new(options.cache_bytes)),
        upstreams: RwLock::new(Vec::new()),
        inside: RwLock::new(Vec::new()),
        pending: Mutex::new(HashMap::new()),
        waiting: crate::limits::ConnectionLimit::new(MAX_WAITING, options.waiting_per_device),
        budget: crate::limits::RateLimit::new(options.queries_per_device, 2 * options.queries_per_device),
    });
    shared.refresh_local(&leases.borrow_and_update());
    shared.refresh_inside();
    shared.refresh_upstreams(uplink.as_mut().map(|u| u.borrow_and_update().clone()).as_ref());

    let mut tasks = JoinSet::new();
    let mut udp_sockets = Vec::new();
    for lan in &options.lans {
        let (udp, tcp) = sockets(lan)?;
        udp_sockets.extend(udp);
        tasks.spawn(serve_tcp(tcp, shared.clone()));
    }
    let mut udp = UdpThread::start(udp_sockets, shared.clone())?;
    let result = serve(&shared, &mut tasks, &mut udp, leases, uplink, context).await;
    udp.stop().await;
    result
}

/// The service's own loop, its listeners started: local names and upstreams follow the leases and the uplink.
async fn serve(
    shared: &Arc<Shared>,
    tasks: &mut JoinSet<()>,
    udp: &mut UdpThread,
    mut leases: watch::Receiver<LeaseSnapshot>,
    mut uplink: Option<watch::Receiver<UplinkSnapshot>>,
    mut context: ServiceContext,
) -> Result<(), ServiceError> {
    context.report(ServiceState::Running, format!("on {}", shared.options.lans.join(", ")));
    let mut applied = shared.options.applied.clone();
    // Local names are rebuilt when the leases change, but after a rebuild not again for twenty times as long as it
    // took: a rebuild reads every lease, which with a home's few is microseconds (so a new device's name resolves
    // at once) and with 100,000 tens of milliseconds; either way rebuilding takes at most a twentieth of a core.
    let mut next_refresh = Instant::now();
    let mut refresh_due: Option<tokio::time::Instant> = None;
    let refresh = |leases: &mut watch::Receiver<LeaseSnapshot>| {
        let started = Instant::now();
        let snapshot = leases.borrow_and_update().clone();
        // Off the runtime's other work (the DHCP server's batches) while it reads every lease.
        crate::blocking::in_place(|| shared.refresh_local(&snapshot));
        Instant::now() + started.elapsed() * 20
    };
    loop {
        tokio::select! {
            _ = context.shutdown.wait() => return Ok(()),
            changed = leases.changed(), if refresh_due.is_none() => {
                if changed.is_err() {
                    return Ok(());
                }
                if Instant::now() >= next_refresh {
                    next_refresh = refresh(&mut leases);
                } else {
                    refresh_due = Some(next_refresh.into());
                }
            }
            _ = sleep_until_due(refresh_due) => {
                refresh_due = None;
                next_refresh = refresh(&mut leases);
            }
            Some(snapshot) = next_snapshot(&mut uplink) => shared.refresh_upstreams(Some(&snapshot)),
            () = next_applied(&mut applied) => {
                // The router's addresses on the LANs follow the delegated prefix.
                shared.refresh_inside();
                shared.refresh_local(&leases.borrow());
            }
            Some(done) = tasks.join_next() => {
                return Err(format!("a DNS listener stopped: {done:?}").into());
            }
            why = udp.failed() => return Err(why.into()),
        }
    }
}

/// The next change of what netconfig applied (never, without netconfig or once it is gone).
async fn next_applied(applied: &mut Option<watch::Receiver<Applied>>) {
    if let Some(receiver) = applied
        && receiver.changed().await.is_ok()
    {
        receiver.borrow_and_update();
        return;
    }
    std::future::pending().await
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

/// DNS over TCP connections at once, and from one LAN device (each is a task and a descriptor).
const MAX_TCP_CONNECTIONS: usize = 64;
const MAX_TCP_CONNECTIONS_PER_CLIENT: usize = 8;

async fn serve_tcp(listener: TcpListener, shared: Arc<Shared>) {
    let limit = crate::limits::ConnectionLimit::new(MAX_TCP_CONNECTIONS, MAX_TCP_CONNECTIONS_PER_CLIENT);
    loop {
        let (stream, from) = crate::limits::accept(&listener, "DNS over TCP").await;
        // Over the limit, the connection is closed at once: the client falls back or tries again.
        let Some(slot) = limit.try_acquire(from.ip()) else { continue };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(TCP_IDLE * 6, serve_connection(stream, shared)).await;
            drop(slot);
        });
    }
}

async fn serve_connection<S>(mut stream: S, shared: Arc<Shared>) -> std::io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
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

/// For fuzzing and its corpus replay: a DNS service with local data and no upstream (nothing leaves the
/// process), fed `data` as one UDP query and as a TCP stream (length-prefixed framing included).
#[doc(hidden)]
pub(crate) fn fuzz_input(data: &[u8]) {
    let options = DnsOptions {
        lans: Vec::new(),
        router_name: "router".into(),
        rebind_allowlist: vec!["nas.example.org".into()],
        upstreams: Vec::new(),
        metrics: Arc::default(),
        cache_bytes: 64 << 10,
        queries_per_device: QUERIES_PER_SECOND_PER_DEVICE,
        waiting_per_device: WAITING_PER_DEVICE,
        applied: None,
    };
    let leases = crate::lan::dhcp4d::LeaseSnapshot::of(vec![crate::lan::dhcp4d::Lease {
        num: 0,
        addr: std::net::Ipv4Addr::new(192, 0, 2, 100),
        hardware_addr: [2, 0, 0, 0, 2, 1],
        hostname: Some("lan2".into()),
        hostname_override: None,
        expiry: None,
        last_ack: None,
        interface: "lan0".into(),
    }]);
    let local = LocalData::build(leases.iter(), "router", &[IpAddr::from([192, 0, 2, 1])], crate::clock::now());
    let shared = Arc::new(Shared {
        options,
        local: RwLock::new(local),
        cache: Mutex::new(Cache::new(64 << 10)),
        upstreams: RwLock::new(Vec::new()),
        inside: RwLock::new(Vec::new()),
        pending: Mutex::new(HashMap::new()),
        waiting: crate::limits::ConnectionLimit::new(MAX_WAITING, WAITING_PER_DEVICE),
        budget: crate::limits::RateLimit::new(QUERIES_PER_SECOND_PER_DEVICE, 2 * QUERIES_PER_SECOND_PER_DEVICE),
    });
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_time().build() else { return };
    runtime.block_on(async {
        let _ = shared.handle(data).await;
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let serving = tokio::spawn(serve_connection(server, shared.clone()));
        let _ = client.write_all(data).await;
        drop(client);
        let _ = tokio::time::timeout(Duration::from_secs(1), serving).await;
    });
    // Answers from an upstream: the same bytes as a response, through rebinding protection and the cache.
    if let Ok(mut response) = Message::from_vec(data) {
        let name = response.queries.first().map(|q| q.name().to_ascii()).unwrap_or_default();
        let _ = local::drop_rebinding(&mut response, &name, &[], &[(IpAddr::from([198, 51, 100, 7]), 32)]);
        let mut cache = Cache::new(64 << 10);
        cache.put(&name, RecordType::A, &response, Instant::now());
        let mut key = Vec::new();
        if let Some(question_end) = forwardable_key(data, &mut key) {
            let (name, kind) = key.split_at(key.len() - 2);
            let kind = RecordType::from(u16::from_be_bytes([kind[0], kind[1]]));
            cache.put(&String::from_utf8_lossy(name), kind, &response, Instant::now());
            let _ = cache.get_encoded(&key, data, question_end, Instant::now(), &mut Vec::new());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{net::Ipv4Addr, str::FromStr};

    use hickory_proto::{
        op::{OpCode, Query},
        rr::{Name, RData, Record, rdata::A},
    };

    use super::*;

    fn query_bytes(name: &str, id: u16) -> Vec<u8> {
        let mut message = Message::query();
        message.metadata.id = id;
        message.metadata.recursion_desired = true;
        message.add_query(Query::query(Name::from_str(name).expect("name"), RecordType::A));
        message.to_vec().expect("encodes")
    }

    #[test]
    fn plain_queries_are_keyed_from_their_bytes_and_local_names_are_not() {
        let mut key = Vec::new();
        let end = forwardable_key(&query_bytes("WWW.Example.org.", 1), &mut key).expect("forwardable");
        let mut expected = Vec::new();
        crate::lan::dns::cache::key("www.example.org", RecordType::A, &mut expected);
        assert_eq!(key, expected);
        assert_eq!(end, query_bytes("WWW.Example.org.", 1).len());
        for local in ["lan2.lan.", "lan2.", "1.2.0.192.in-addr.arpa.", "localhost."] {
            assert!(forwardable_key(&query_bytes(local, 1), &mut key).is_none(), "{local}");
        }
        let bytes = query_bytes("www.example.org.", 1);
        for len in 0..bytes.len() {
            assert!(forwardable_key(&bytes[..len], &mut key).is_none(), "{len} bytes");
        }
        // One label "a.example" is not the two labels of a.example: it must not share their key.
        let mut dotted = query_bytes("a.", 1)[..12].to_vec();
        dotted.extend_from_slice(b"\x09a.example\x00\x00\x01\x00\x01");
        assert!(forwardable_key(&dotted, &mut key).is_none(), "{dotted:?}");
    }

    #[test]
    fn a_cache_hit_carries_the_askers_id_and_letter_case() {
        let mut cache = Cache::new(crate::lan::dns::cache::DEFAULT_BYTES);
        let mut response = Message::response(1, OpCode::Query);
        response.add_query(Query::query(Name::from_str("www.example.org.").expect("name"), RecordType::A));
        response.add_answer(Record::from_rdata(
            Name::from_str("www.example.org.").expect("name"),
            300,
            RData::A(A(Ipv4Addr::new(203, 0, 113, 80))),
        ));
        let now = Instant::now();
        cache.put("www.example.org", RecordType::A, &response, now);
        // DNS 0x20: a resolver may randomise the letter case of its question, and checks it in the answer.
        let mut request = query_bytes("www.example.org.", 4242);
        for at in [13, 15, 18, 20, 22, 26] {
            request[at] = request[at].to_ascii_uppercase();
        }
        let mut key = Vec::new();
        let end = forwardable_key(&request, &mut key).expect("forwardable");
        let mut bytes = Vec::new();
        assert!(cache.get_encoded(&key, &request, end, now, &mut bytes), "a hit");
        let decoded = Message::from_vec(&bytes).expect("decodes");
        assert_eq!(decoded.metadata.id, 4242);
        assert_eq!(decoded.queries[0].name().to_ascii(), "WwW.eXaMpLe.oRg.");
        assert_eq!(decoded.answers.len(), 1);
        let mut later = Vec::new();
        assert!(cache.get_encoded(&key, &request, end, now + Duration::from_secs(100), &mut later), "a hit");
        assert_eq!(Message::from_vec(&later).expect("decodes").answers[0].ttl, 200);
    }

    /// An upstream on loopback that answers every question after `delay`, counting what it was asked.
    async fn slow_upstream(delay: Duration) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = socket.local_addr().expect("addr");
        let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = asked.clone();
        tokio::spawn(async move {
            let socket = Arc::new(socket);
            let mut buffer = vec![0u8; 1500];
            while let Ok((len, from)) = socket.recv_from(&mut buffer).await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Ok(query) = Message::from_vec(&buffer[..len]) else { continue };
                let socket = socket.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let mut answer = Message::response(query.metadata.id, OpCode::Query);
                    answer.add_queries(query.queries.clone());
                    let name = query.queries[0].name().clone();
                    answer.add_answer(Record::from_rdata(name, 300, RData::A(A(Ipv4Addr::new(203, 0, 113, 80)))));
                    let _ = socket.send_to(&answer.to_vec().expect("encodes"), from).await;
                });
            }
        });
        (addr, asked)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn identical_questions_in_flight_go_upstream_once() {
        let (upstream, asked) = slow_upstream(Duration::from_millis(300)).await;
        let options = DnsOptions {
            lans: Vec::new(),
            router_name: "router".into(),
            rebind_allowlist: Vec::new(),
            upstreams: Vec::new(),
            metrics: Arc::default(),
            cache_bytes: crate::lan::dns::cache::DEFAULT_BYTES,
            queries_per_device: QUERIES_PER_SECOND_PER_DEVICE,
            waiting_per_device: WAITING_PER_DEVICE,
            applied: None,
        };
        let shared = Arc::new(Shared {
            options,
            local: RwLock::new(LocalData::default()),
            cache: Mutex::new(Cache::new(crate::lan::dns::cache::DEFAULT_BYTES)),
            upstreams: RwLock::new(vec![upstream]),
            inside: RwLock::new(Vec::new()),
            pending: Mutex::new(HashMap::new()),
            waiting: crate::limits::ConnectionLimit::new(MAX_WAITING, WAITING_PER_DEVICE),
            budget: crate::limits::RateLimit::new(QUERIES_PER_SECOND_PER_DEVICE, 2 * QUERIES_PER_SECOND_PER_DEVICE),
        });
        let askers: Vec<_> = (0..20u16)
            .map(|id| {
                let shared = shared.clone();
                tokio::spawn(async move { shared.handle(&query_bytes("www.example.org.", 1000 + id)).await })
            })
            .collect();
        for (id, asker) in askers.into_iter().enumerate() {
            let bytes = asker.await.expect("task").expect("an answer");
            let answer = Message::from_vec(&bytes).expect("decodes");
            assert_eq!(answer.metadata.id, 1000 + id as u16, "each client gets its own ID back");
            assert_eq!(answer.answers.len(), 1, "{answer:?}");
        }
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1, "one upstream query for 20 clients");
        assert!(shared.pending.lock().expect("lock").is_empty(), "nothing left pending");
        assert_eq!(shared.options.metrics.dns.joined.get(), 19);
    }
}
