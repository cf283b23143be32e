//! Entry points for the fuzz targets under `fuzz/` (`cargo +nightly fuzz run TARGET`) and for the stable test
//! that replays their corpora (`tests/fuzz_corpora.rs`): every parser that takes bytes from the network or a
//! file, fed one input. None of them may panic, whatever the bytes.

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant, SystemTime},
};

use crate::{
    lan::dhcp4d::{PoolConfig, Server},
    uplink::{
        dhcp4,
        dhcp6::{self},
        entropy::Sequence,
    },
};

/// A fuzz target's entry point.
pub type Target = fn(&[u8]);

/// Every target by name, for the corpus replay.
pub const TARGETS: &[(&str, Target)] = &[
    ("dhcp4_server", dhcp4_server),
    ("dhcp4_client", dhcp4_client),
    ("dhcp6_client", dhcp6_client),
    ("dns", dns),
    ("solicitation", solicitation),
    ("backup_archive", backup_archive),
    ("perm_json", perm_json),
];

/// A LAN's DHCPv4 server: the input as a request, twice (the second sees what the first changed).
pub fn dhcp4_server(data: &[u8]) {
    let Some(pool) = PoolConfig::whole_subnet("lan0", Ipv4Addr::new(192, 0, 2, 1), 28) else { return };
    let mut server = Server::new(pool, []);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let _ = server.handle(now, data);
    let _ = server.handle(now + Duration::from_secs(30), data);
}

const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const XID: u32 = 0x7708_d724;

/// The uplink's DHCPv4 client in every state that takes packets, with the input's transaction ID and hardware
/// address set to the client's (so the fuzzer reaches the option parsing), and as a saved ACK.
pub fn dhcp4_client(data: &[u8]) {
    let _ = dhcp4::parse_ack(data);
    let mut packet = data.to_vec();
    if packet.len() >= 34 {
        packet[4..8].copy_from_slice(&XID.to_be_bytes());
        packet[28..34].copy_from_slice(&MAC);
    }
    let now = Instant::now();
    let config = dhcp4::ClientConfig { hardware_addr: MAC, hostname: Some("router".into()) };
    let mut client = dhcp4::Client::new(config, Box::new(Sequence::new(vec![XID])), None, now);
    client.handle_timeout(now);
    // SELECTING, then whatever the input moved it to (REQUESTING, BOUND), then the same bytes again.
    let _ = client.handle_packet(now, &packet);
    let _ = client.handle_packet(now, &packet);
    let later = client.next_wakeup();
    client.handle_timeout(later);
    let _ = client.handle_packet(later, &packet);
}

/// The uplink's DHCPv6 client soliciting, then requesting or renewing, with the input's transaction ID set
/// to the client's.
pub fn dhcp6_client(data: &[u8]) {
    let now = Instant::now();
    let config = dhcp6::ClientConfig { duid: vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 1], ia_na: Some(1), ia_pd: Some(2) };
    let mut client = dhcp6::Client::new(config, Box::new(Sequence::new(vec![0x00ab_cdef])), None, now);
    let mut xid = None;
    for event in client.handle_timeout(now) {
        if let dhcp6::Event::Send(transmit) = event {
            xid = transmit.payload.get(1..4).map(<[u8]>::to_vec);
        }
    }
    let mut packet = data.to_vec();
    if let Some(xid) = xid
        && packet.len() >= 4
    {
        packet[1..4].copy_from_slice(&xid);
    }
    let _ = client.handle_packet(now, &packet);
    let _ = client.handle_packet(now, &packet);
    let later = client.next_wakeup();
    client.handle_timeout(later);
    let _ = client.handle_packet(later, &packet);
}

/// The LAN DNS service (no upstream): a UDP query, a TCP stream, an upstream answer.
pub fn dns(data: &[u8]) {
    crate::lan::dns::service::fuzz_input(data);
}

/// A router or neighbour solicitation from a LAN.
pub fn solicitation(data: &[u8]) {
    let _ = crate::lan::radvd::advert::parse_solicitation(data);
}

/// A backup archive, as a restore reads it.
pub fn backup_archive(data: &[u8]) {
    let limits = crate::backup::Limits { max_file: 1 << 20, max_total: 4 << 20, max_files: 100 };
    let _ = crate::backup::archive::read(data, limits);
}

/// The input as each JSON file under `--perm`, read by the code that reads it at start.
pub fn perm_json(data: &[u8]) {
    let Ok(dir) = tempfile_dir() else { return };
    let perm = dir.path();
    let files = [
        "interfaces.json",
        "portforwardings.json",
        "routerd.json",
        "dhcp4d/leases.json",
        "dhcp4/wire/lease.json",
        "dhcp6/wire/lease.json",
        "update/state.json",
        "tls/revoked.json",
    ];
    for file in files {
        let path = perm.join(file);
        if let Some(parent) = path.parent()
            && std::fs::create_dir_all(parent).is_err()
        {
            return;
        }
        if std::fs::write(&path, data).is_err() {
            return;
        }
    }
    let config = crate::config::Config::load(perm);
    let _ = crate::firewall::forwards::parse_all(&config.port_forwardings.forwardings);
    let _ = crate::lan::dhcp4d::service::load_leases(perm, "lan0");
    let _ = dhcp4::store::load(perm);
    let _ = dhcp6::store::load(perm);
    let _ = crate::update::state::UpdateState::load(perm);
    let _ = crate::store::read_json_optional::<Vec<crate::lan::dhcp4d::LeaseRecord>>(&perm.join(files[3]));
}

/// A scratch directory under the system's temporary directory, removed when dropped.
fn tempfile_dir() -> std::io::Result<ScratchDir> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "routerd-fuzz-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&path)?;
    Ok(ScratchDir(path))
}

struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
