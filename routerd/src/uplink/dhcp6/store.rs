//! The DHCPv6 lease on disk: `dhcp6/wire/lease.json` in router7's format (`valid_until` is when renewal is due;
//! `prefixes` are Go `net.IPNet`s: `{"IP": "2a02:168:4a00::", "Mask": "<base64>"}`), with routerd's additions,
//! which router7 ignores and routerd needs to apply the lease again after a restart.

use std::{net::Ipv6Addr, path::Path, time::Duration};

use data_encoding::BASE64;
use serde::{Deserialize, Serialize};

use super::{DelegatedPrefix, Lease, LeaseTimes, LeasedAddress, lease::mask};
use crate::{
    store::{self, Mode, StoreError},
    uplink::lease_times::{FileTimes, rfc3339, wall_clock},
};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LeaseFile {
    pub valid_until: String,
    pub prefixes: Vec<GoIpNet>,
    #[serde(default)]
    pub dns: Vec<String>,
    /// routerd's addition: NTP servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ntp: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    #[serde(flatten)]
    pub times: FileTimes,
    #[serde(default)]
    pub t1_seconds: u64,
    #[serde(default)]
    pub t2_seconds: u64,
    #[serde(default)]
    pub valid_seconds: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct GoIpNet {
    #[serde(rename = "IP")]
    pub ip: String,
    #[serde(rename = "Mask")]
    pub mask: String,
}

impl GoIpNet {
    pub(crate) fn from_prefix(prefix: &DelegatedPrefix) -> GoIpNet {
        let mask = u128::MAX.checked_shl(128 - u32::from(prefix.length)).unwrap_or(0);
        GoIpNet { ip: prefix.prefix.to_string(), mask: BASE64.encode(&mask.to_be_bytes()) }
    }

    /// The prefix, if the mask is a contiguous IPv6 mask of /1 to /64.
    pub(crate) fn to_prefix(&self, valid: Duration) -> Option<DelegatedPrefix> {
        let ip: Ipv6Addr = self.ip.parse().ok()?;
        let mask: [u8; 16] = BASE64.decode(self.mask.as_bytes()).ok()?.try_into().ok()?;
        let bits = u128::from_be_bytes(mask);
        let length = bits.leading_ones();
        if length == 0 || length > 64 || bits.checked_shl(length).unwrap_or(0) != 0 {
            return None;
        }
        let length = length as u8;
        Some(DelegatedPrefix { prefix: mask_of(ip, length), length, preferred: valid, valid })
    }
}

fn mask_of(ip: Ipv6Addr, length: u8) -> Ipv6Addr {
    mask(ip, length)
}

pub(crate) fn path(perm: &Path) -> std::path::PathBuf {
    perm.join("dhcp6").join("wire").join("lease.json")
}

/// Forgets the saved lease (after a release).
pub(crate) fn remove(perm: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path(perm)) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

pub(crate) fn save(perm: &Path, lease: &Lease, times: LeaseTimes) -> Result<(), StoreError> {
    let file = LeaseFile {
        valid_until: rfc3339(wall_clock(times.renew_at)),
        prefixes: lease.prefixes.iter().map(GoIpNet::from_prefix).collect(),
        dns: lease.dns.iter().map(ToString::to_string).collect(),
        ntp: lease.ntp.iter().map(ToString::to_string).collect(),
        address: lease.address.as_ref().map(|a| a.address.to_string()).unwrap_or_default(),
        times: FileTimes::new(routerd_proto::hex(&lease.server_id), times),
        t1_seconds: lease.t1.as_secs(),
        t2_seconds: lease.t2.as_secs(),
        valid_seconds: lease.valid.as_secs(),
    };
    store::write_json(&path(perm), &file, Mode::Public)
}

/// The saved lease (also one written by router7, which has no address or timers), or why it cannot be used.
pub(crate) fn load(perm: &Path) -> Result<Option<Lease>, String> {
    let path = path(perm);
    let file: Option<LeaseFile> = store::read_json_optional(&path).map_err(|e| e.to_string())?;
    let Some(file) = file else { return Ok(None) };
    let valid = Duration::from_secs(file.valid_seconds.max(1));
    let prefixes: Vec<DelegatedPrefix> = file.prefixes.iter().filter_map(|p| p.to_prefix(valid)).collect();
    if prefixes.len() != file.prefixes.len() {
        return Err(format!("{}: a prefix is not an IPv6 network of /1 to /64", path.display()));
    }
    let address = file
        .address
        .parse::<Ipv6Addr>()
        .ok()
        .filter(|a| super::lease::is_global_unicast(*a))
        .map(|address| LeasedAddress { address, preferred: valid, valid });
    let dns = file.dns.iter().filter_map(|d| d.parse().ok()).collect();
    let ntp = file.ntp.iter().filter_map(|d| d.parse().ok()).collect();
    let server_id = (0..file.times.server_id.len() / 2)
        .filter_map(|i| u8::from_str_radix(file.times.server_id.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    if address.is_none() && prefixes.is_empty() {
        return Ok(None);
    }
    Ok(Some(Lease {
        address,
        prefixes,
        dns,
        ntp,
        server_id,
        t1: Duration::from_secs(file.t1_seconds),
        t2: Duration::from_secs(file.t2_seconds),
        valid,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_router7s_file_and_round_trips_its_own() {
        let dir = tempfile::tempdir().expect("temp dir");
        // As router7 writes it (Go's json for net.IPNet).
        let router7 = r#"{"valid_until":"2018-03-20T11:05:39.918235327+01:00","prefixes":[{"IP":"2a02:168:4a00::","Mask":"////////AAAAAAAAAAAAAA=="}],"dns":["2001:1620:2777:1::10","2001:1620:2777:2::20"]}"#;
        std::fs::create_dir_all(dir.path().join("dhcp6/wire")).expect("dirs");
        std::fs::write(path(dir.path()), router7).expect("write");
        let lease = load(dir.path()).expect("readable").expect("a lease");
        assert_eq!(lease.prefixes[0].cidr(), "2a02:168:4a00::/48");
        assert_eq!(lease.dns.len(), 2);
        assert!(lease.address.is_none());

        let now = std::time::Instant::now();
        let times = LeaseTimes { bound_at: now, renew_at: now, rebind_at: now, expires_at: now };
        save(dir.path(), &lease, times).expect("saved");
        let text = std::fs::read_to_string(path(dir.path())).expect("read");
        assert!(text.contains(r#""Mask": "////////AAAAAAAAAAAAAA==""#), "{text}");
        assert_eq!(load(dir.path()).expect("readable").expect("a lease").prefixes, lease.prefixes);
    }

    #[test]
    fn a_damaged_file_is_an_error_not_a_lease() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("dhcp6/wire")).expect("dirs");
        std::fs::write(path(dir.path()), r#"{"valid_until":"x","prefixes":[{"IP":"2001:db8::","Mask":"AAAA"}]}"#)
            .expect("write");
        assert!(load(dir.path()).is_err());
        std::fs::write(path(dir.path()), "{not json").expect("write");
        assert!(load(dir.path()).is_err());
    }
}
