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
        protocol::Protocol,
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

/// The input (after its first byte, which picks the file) as one of the JSON files under `--perm`, read by the
/// code that reads it at start. One scratch directory per process, the file removed after each input, so every
/// input runs alone.
pub fn perm_json(data: &[u8]) {
    const FILES: [&str; 8] = [
        "interfaces.json",
        "portforwardings.json",
        "routerd.json",
        "dhcp4d/leases.json",
        "dhcp4/wire/ack",
        "dhcp6/wire/lease.json",
        "update/state.json",
        "tls/revoked.json",
    ];
    static SCRATCH: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    let Some((first, content)) = data.split_first() else { return };
    let Some(perm) = SCRATCH.get_or_init(scratch_perm).as_deref() else { return };
    let file = FILES[usize::from(*first) % FILES.len()];
    let path = perm.join(file);
    if std::fs::write(&path, content).is_err() {
        return;
    }
    match file {
        "interfaces.json" | "portforwardings.json" | "routerd.json" => {
            let config = crate::config::Config::load(perm);
            let _ = crate::config::forwards::parse_all(&config.port_forwardings.forwardings);
        }
        "dhcp4d/leases.json" => {
            let _ = crate::lan::dhcp4d::persist::read_file(perm, "lan0");
        }
        "dhcp4/wire/ack" => {
            let _ = dhcp4::store::load(perm);
        }
        "dhcp6/wire/lease.json" => {
            let _ = dhcp6::store::load(perm);
        }
        "update/state.json" => {
            let _ = crate::update::state::UpdateState::load(perm);
        }
        _ => {
            if let Ok(authority) = scratch_authority(perm) {
                let _ = authority.revoked_serials();
                let _ = authority.current_crl();
            }
        }
    }
    let _ = std::fs::remove_file(&path);
    // A file that was not JSON is moved aside by the lease loader; it goes too.
    let _ = std::fs::remove_file(perm.join("dhcp4d/leases.json.unreadable"));
}

/// A `--perm` under the system's temporary directory with the directories the files need (and a CA, made once).
fn scratch_perm() -> Option<std::path::PathBuf> {
    let perm = std::env::temp_dir().join(format!("routerd-fuzz-{}", std::process::id()));
    for dir in ["dhcp4d", "dhcp4/wire", "dhcp6/wire", "update", "tls"] {
        std::fs::create_dir_all(perm.join(dir)).ok()?;
    }
    Some(perm)
}

fn scratch_authority(perm: &std::path::Path) -> Result<&'static crate::pki::Authority, ()> {
    static AUTHORITY: std::sync::OnceLock<Option<crate::pki::Authority>> = std::sync::OnceLock::new();
    AUTHORITY
        .get_or_init(|| crate::pki::Authority::load_or_create(crate::pki::PkiPaths::new(perm), "fuzz").ok())
        .as_ref()
        .ok_or(())
}

/// Removes this process's scratch `--perm` (the corpus replay calls it when done).
pub fn cleanup() {
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("routerd-fuzz-{}", std::process::id())));
}
