//! The schemas of the configuration files (router7's, where router7 has the file).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::INTERFACES_JSON;

/// `interfaces.json`, as router7 reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfacesFile {
    #[serde(default)]
    pub interfaces: Vec<InterfaceConfig>,
    #[serde(default)]
    pub bridges: Vec<Bridge>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceConfig {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub hardware_addr: String,
    #[serde(default)]
    pub spoof_hardware_addr: String,
    /// e.g. `192.0.2.1/24`
    #[serde(default)]
    pub addr: String,
    #[serde(default)]
    pub extra_addrs: Vec<String>,
    #[serde(default)]
    pub extra_routes: Vec<ExtraRoute>,
    #[serde(default)]
    pub mtu: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraRoute {
    #[serde(default)]
    pub destination: String,
    #[serde(default)]
    pub gateway: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bridge {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub interface_hardware_addrs: Vec<String>,
}

impl InterfacesFile {
    /// Checks values JSON cannot: names, addresses, MACs, MTUs. Returns (file, message) pairs.
    pub fn validate(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        for (index, interface) in self.interfaces.iter().enumerate() {
            let label = if interface.name.is_empty() {
                problems.push((INTERFACES_JSON, format!("interfaces[{index}]: \"name\" is missing or empty")));
                format!("interfaces[{index}]")
            } else {
                format!("interface {}", interface.name)
            };
            for (field, value) in
                [("hardware_addr", &interface.hardware_addr), ("spoof_hardware_addr", &interface.spoof_hardware_addr)]
            {
                if !value.is_empty() && parse_mac(value).is_none() {
                    problems.push((
                        INTERFACES_JSON,
                        format!("{label}: {field} {value:?} is not a MAC address like 02:00:00:00:00:01"),
                    ));
                }
            }
            let addrs = std::iter::once(&interface.addr).filter(|a| !a.is_empty()).chain(&interface.extra_addrs);
            for addr in addrs {
                if parse_cidr(addr).is_none() {
                    problems.push((
                        INTERFACES_JSON,
                        format!("{label}: address {addr:?} is not in CIDR form like 192.0.2.1/24"),
                    ));
                }
            }
            if interface.mtu != 0 && !(68..=65535).contains(&interface.mtu) {
                problems.push((INTERFACES_JSON, format!("{label}: mtu {} is outside 68–65535", interface.mtu)));
            }
        }
        problems
    }
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Parses `ADDR/LEN` with a prefix length that fits the address family.
pub fn parse_cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = text.split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((addr, len))
}

/// `portforwardings.json`, router7's schema. Ports are strings: `"8080"` or `"8040-8060"`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortForwardingsFile {
    #[serde(default)]
    pub forwardings: Vec<PortForwarding>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortForwarding {
    /// `tcp`, `udp` or `tcp,udp`
    #[serde(default)]
    pub proto: String,
    #[serde(default)]
    pub port: String,
    #[serde(default)]
    pub dest_addr: String,
    #[serde(default)]
    pub dest_port: String,
    /// routerd's addition (router7 ignores it): what the forward is for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// `routerd.json`: settings router7 has no file for. Every field is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterdFile {
    /// The router's name (in its certificate and, later, in DNS). Default: the system's hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Addresses the DHCP server hands out per LAN, e.g. `{"lan0": "192.0.2.100-192.0.2.199"}`. Default: the
    /// LAN's whole subnet except the router's address.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub dhcp_ranges: std::collections::BTreeMap<String, String>,
    /// DNS servers to forward to instead of those the ISP's DHCP gave, e.g. `["198.51.100.53"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_upstreams: Vec<String>,
    /// Domains whose answers may point into private address space (exempt from DNS rebinding protection),
    /// e.g. `["nas.example.org"]` (a name and everything below it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_rebind_allowlist: Vec<String>,
    /// Inbound IPv6 connections let through to one device, e.g.
    /// `[{"address": "2001:db8:100::23", "proto": "tcp", "port": 443}]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipv6_pinholes: Vec<PinholeConfig>,
    /// Packets the capture ring keeps for `rtrctl capture`'s backfill. Default 50000 (router7's); at most
    /// 1000000 (each packet takes its size plus about 80 bytes of memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_ring_packets: Option<usize>,
    /// Keep DNS in the capture ring at all times. By default DNS is captured only while `rtrctl capture` (or
    /// another reader) is connected, so queries neither push DHCP and ND out of the ring nor cost a copy each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_dns_history: Option<bool>,
    /// Seconds a new routerd version has to report healthy before it is rolled back, when the update request
    /// does not say (default 120, 10–3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_confirm_window_seconds: Option<u64>,
    /// Where `rtrctl diag` checks that the internet is reachable.
    #[serde(default, skip_serializing_if = "DiagnosticsConfig::is_empty")]
    pub diagnostics: DiagnosticsConfig,
    /// The DNS cache's size in bytes (answers counted by their wire size plus a small overhead each; answers
    /// over 4 KiB are not cached). Default 8 MiB, 64 KiB–1 GiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_cache_bytes: Option<usize>,
    /// DNS queries a second one LAN device may send (bursts of twice that); beyond it they are dropped.
    /// Default 500, 1–1,000,000: raise it for a resolver of its own behind routerd, or a benchmark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_queries_per_second_per_device: Option<u32>,
    /// DNS queries of one LAN device that may wait for an upstream at once (of 2,048 for all). Default 64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_waiting_per_device: Option<usize>,
    /// NTP servers to set the clock from, in addition to those the ISP gives (DHCPv4 option 42, DHCPv6 options
    /// 56 and 31), e.g. `["198.51.100.123"]`: IP addresses (a name would need DNS, which needs no clock but
    /// may need the uplink first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ntp_servers: Vec<String>,
    /// ed25519 public keys (64 hex digits each, from `routerd-image keygen`): when set, a system update bundle
    /// must be signed by one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub update_signing_keys: Vec<String>,
}

/// The range routerd.json's `dns_queries_per_second_per_device` may take.
pub const DNS_QUERIES_PER_SECOND_PER_DEVICE: std::ops::RangeInclusive<u32> = 1..=1_000_000;
/// The range routerd.json's `dns_waiting_per_device` may take; its end is every waiting slot there is (the DNS
/// service's limit for all devices together).
pub const DNS_WAITING_PER_DEVICE: std::ops::RangeInclusive<usize> = 1..=2048;

/// The range routerd.json's `dns_cache_bytes` may take.
pub const DNS_CACHE_BYTES: std::ops::RangeInclusive<usize> = (64 << 10)..=(1 << 30);

/// Largest capture ring routerd.json may ask for.
pub const MAX_CAPTURE_RING_PACKETS: usize = 1_000_000;

/// routerd.json `diagnostics`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiagnosticsConfig {
    /// TCP targets (`ADDR:PORT`, IPv4 or `[IPv6]:PORT`) for the reachability checks. Default: port 53 of the
    /// upstream DNS servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tcp_targets: Vec<String>,
    /// A name resolved through the upstream DNS servers. Default: `.` (the root zone's servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
}

impl DiagnosticsConfig {
    pub fn is_empty(&self) -> bool {
        self == &DiagnosticsConfig::default()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinholeConfig {
    pub address: String,
    pub proto: String,
    pub port: u16,
}

impl PinholeConfig {
    /// The pinhole, or what is wrong with it.
    pub fn parse(&self) -> Result<(std::net::Ipv6Addr, &'static str, u16), String> {
        let address = self
            .address
            .parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("address {:?} is not an IPv6 address", self.address))?;
        let proto = match self.proto.as_str() {
            "tcp" => "tcp",
            "udp" => "udp",
            other => return Err(format!("proto {other:?}: use \"tcp\" or \"udp\"")),
        };
        if self.port == 0 {
            return Err("port 0: ports are 1 to 65535".to_string());
        }
        Ok((address, proto, self.port))
    }
}

impl RouterdFile {
    pub fn validate(&self) -> Vec<(&'static str, String)> {
        let mut problems: Vec<(&'static str, String)> = self
            .dhcp_ranges
            .iter()
            .filter(|(_, range)| parse_range(range).is_none())
            .map(|(lan, range)| {
                (
                    super::ROUTERD_JSON,
                    format!("dhcp_ranges.{lan}: {range:?} is not a range like 192.0.2.100-192.0.2.199"),
                )
            })
            .collect();
        for (index, pinhole) in self.ipv6_pinholes.iter().enumerate() {
            if let Err(problem) = pinhole.parse() {
                problems.push((super::ROUTERD_JSON, format!("ipv6_pinholes[{index}]: {problem}")));
            }
        }
        for upstream in self.dns_upstreams.iter().filter(|u| u.parse::<std::net::IpAddr>().is_err()) {
            problems.push((super::ROUTERD_JSON, format!("dns_upstreams: {upstream:?} is not an IP address")));
        }
        for key in self.update_signing_keys.iter().filter(|k| parse_public_key(k).is_none()) {
            problems.push((super::ROUTERD_JSON, format!("update_signing_keys: {key:?} is not 64 hex digits")));
        }
        for server in self.ntp_servers.iter().filter(|u| u.parse::<std::net::IpAddr>().is_err()) {
            problems.push((super::ROUTERD_JSON, format!("ntp_servers: {server:?} is not an IP address")));
        }
        let ranges = [
            out_of_range("capture_ring_packets", self.capture_ring_packets, &(1..=MAX_CAPTURE_RING_PACKETS)),
            out_of_range("dns_cache_bytes", self.dns_cache_bytes, &DNS_CACHE_BYTES),
            out_of_range(
                "dns_queries_per_second_per_device",
                self.dns_queries_per_second_per_device,
                &DNS_QUERIES_PER_SECOND_PER_DEVICE,
            ),
            out_of_range("dns_waiting_per_device", self.dns_waiting_per_device, &DNS_WAITING_PER_DEVICE),
            out_of_range(
                "update_confirm_window_seconds",
                self.update_confirm_window_seconds,
                &routerd_proto::CONFIRM_WINDOW_SECONDS,
            ),
        ];
        problems.extend(ranges.into_iter().flatten().map(|problem| (super::ROUTERD_JSON, problem)));
        for target in &self.diagnostics.tcp_targets {
            if target.parse::<std::net::SocketAddr>().is_err() {
                problems.push((
                    super::ROUTERD_JSON,
                    format!("diagnostics.tcp_targets: {target:?} is not ADDR:PORT like 203.0.113.80:443"),
                ));
            }
        }
        if let Some(name) = &self.diagnostics.dns_name
            && let Err(problem) = parse_dns_name(name)
        {
            problems.push((super::ROUTERD_JSON, format!("diagnostics.dns_name: {problem}")));
        }
        problems
    }
}

/// Parses a public key as `routerd-image keygen` prints it: 64 hex digits.
pub fn parse_public_key(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(key)
}

/// The name diagnostics ask the upstream DNS servers for, as a fully qualified DNS name (`.` is the root).
pub fn parse_dns_name(name: &str) -> Result<hickory_proto::rr::Name, String> {
    let fqdn = if name.ends_with('.') { name.to_string() } else { format!("{name}.") };
    std::str::FromStr::from_str(&fqdn).map_err(|e| format!("{name:?} is not a DNS name: {e}"))
}

/// "KEY: VALUE is outside LOW–HIGH" for a setting given outside its range.
fn out_of_range<T>(key: &str, value: Option<T>, range: &std::ops::RangeInclusive<T>) -> Option<String>
where
    T: PartialOrd + std::fmt::Display,
{
    let value = value.filter(|v| !range.contains(v))?;
    Some(format!("{key}: {value} is outside {}–{}", range.start(), range.end()))
}

/// `first-last`, both IPv4, first not after last.
pub fn parse_range(text: &str) -> Option<(std::net::Ipv4Addr, std::net::Ipv4Addr)> {
    let (first, last) = text.split_once('-')?;
    let (first, last): (std::net::Ipv4Addr, std::net::Ipv4Addr) =
        (first.trim().parse().ok()?, last.trim().parse().ok()?);
    (first <= last).then_some((first, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert_eq!(parse_mac("02:73:53:00:CA:fe"), Some([2, 0x73, 0x53, 0, 0xca, 0xfe]));
        for bad in ["", "02:73:53:00:ca", "02:73:53:00:ca:fe:01", "0:73:53:00:ca:fe", "zz:73:53:00:ca:fe"] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }

    #[test]
    fn dhcp_ranges() {
        assert!(parse_range("192.0.2.100-192.0.2.199").is_some());
        for bad in ["192.0.2.199-192.0.2.100", "192.0.2.100", "a-b", "2001:db8::1-2001:db8::2"] {
            assert_eq!(parse_range(bad), None, "{bad}");
        }
        let file: RouterdFile =
            serde_json::from_str(r#"{"dhcp_ranges": {"lan0": "192.0.2.199-192.0.2.100"}}"#).expect("JSON");
        assert_eq!(file.validate().len(), 1);
    }

    #[test]
    fn capture_and_diagnostics_settings_are_checked() {
        let file: RouterdFile = serde_json::from_str(
            r#"{"capture_ring_packets": 0, "diagnostics": {"tcp_targets": ["203.0.113.80:80", "203.0.113.80"],
                "dns_name": "bad..name"}, "update_confirm_window_seconds": 5}"#,
        )
        .expect("JSON");
        let problems: Vec<String> = file.validate().into_iter().map(|(_, p)| p).collect();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].contains("capture_ring_packets: 0"), "{problems:?}");
        assert!(problems[1].contains("update_confirm_window_seconds: 5"), "{problems:?}");
        assert!(problems[2].contains("\"203.0.113.80\" is not ADDR:PORT"), "{problems:?}");
        assert!(problems[3].contains("diagnostics.dns_name"), "{problems:?}");
        let good: RouterdFile = serde_json::from_str(
            r#"{"capture_ring_packets": 1000, "diagnostics": {"tcp_targets": ["[2001:db8::1]:443"], "dns_name": "example.com"}}"#,
        )
        .expect("JSON");
        assert_eq!(good.validate(), vec![]);
    }

    #[test]
    fn cidrs() {
        assert!(parse_cidr("192.0.2.1/24").is_some());
        assert!(parse_cidr("2001:db8::1/64").is_some());
        for bad in ["192.0.2.1", "192.0.2.1/33", "2001:db8::1/129", "x/1", "192.0.2.1/-1"] {
            assert_eq!(parse_cidr(bad), None, "{bad}");
        }
    }
}
