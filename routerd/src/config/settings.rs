//! routerd.json as typed values, parsed and range-checked once when the configuration is loaded: the services
//! take these, never the strings. A value that does not parse or is out of range is left out here (`None`, or
//! missing from a list) and reported as a configuration problem by [`RouterdFile::validate`]; the service's
//! default applies then.

use std::{
    net::{IpAddr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use super::files::{
    DNS_CACHE_BYTES, DNS_QUERIES_PER_SECOND_PER_DEVICE, DNS_WAITING_PER_DEVICE, MAX_CAPTURE_RING_PACKETS, RouterdFile,
    parse_dns_name, parse_public_key,
};

/// An inbound IPv6 connection let through to one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pinhole {
    pub address: Ipv6Addr,
    /// "tcp" or "udp".
    pub protocol: &'static str,
    pub port: u16,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    pub dns_upstreams: Vec<IpAddr>,
    pub ntp_servers: Vec<IpAddr>,
    pub ipv6_pinholes: Vec<Pinhole>,
    pub capture_ring_packets: Option<usize>,
    pub dns_cache_bytes: Option<usize>,
    pub dns_queries_per_second_per_device: Option<u32>,
    pub dns_waiting_per_device: Option<usize>,
    pub update_confirm_window: Option<Duration>,
    pub update_signing_keys: Vec<[u8; 32]>,
    pub diagnostics_tcp_targets: Vec<SocketAddr>,
    /// The name diagnostics resolve (`.` unless routerd.json names a valid one).
    pub diagnostics_dns_name: Option<String>,
}

impl RouterdFile {
    /// The file's settings as typed values (see the module's documentation for what happens to bad ones).
    pub fn settings(&self) -> Settings {
        let in_range =
            |value: Option<usize>, range: std::ops::RangeInclusive<usize>| value.filter(|v| range.contains(v));
        Settings {
            dns_upstreams: self.dns_upstreams.iter().filter_map(|u| u.parse().ok()).collect(),
            ntp_servers: self.ntp_servers.iter().filter_map(|s| s.parse().ok()).collect(),
            ipv6_pinholes: self
                .ipv6_pinholes
                .iter()
                .filter_map(|p| p.parse().ok())
                .map(|(address, protocol, port)| Pinhole { address, protocol, port })
                .collect(),
            capture_ring_packets: in_range(self.capture_ring_packets, 1..=MAX_CAPTURE_RING_PACKETS),
            dns_cache_bytes: in_range(self.dns_cache_bytes, DNS_CACHE_BYTES),
            dns_queries_per_second_per_device: self
                .dns_queries_per_second_per_device
                .filter(|r| DNS_QUERIES_PER_SECOND_PER_DEVICE.contains(r)),
            dns_waiting_per_device: in_range(self.dns_waiting_per_device, DNS_WAITING_PER_DEVICE),
            update_confirm_window: self
                .update_confirm_window_seconds
                .filter(|s| routerd_proto::CONFIRM_WINDOW_SECONDS.contains(s))
                .map(Duration::from_secs),
            update_signing_keys: self.update_signing_keys.iter().filter_map(|k| parse_public_key(k)).collect(),
            diagnostics_tcp_targets: self.diagnostics.tcp_targets.iter().filter_map(|t| t.parse().ok()).collect(),
            diagnostics_dns_name: self.diagnostics.dns_name.clone().filter(|name| parse_dns_name(name).is_ok()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_values_are_typed_and_bad_ones_left_to_the_defaults() {
        let file: RouterdFile = serde_json::from_str(
            r#"{"dns_upstreams": ["198.51.100.53", "not an address", "2001:db8::53"],
                "ntp_servers": ["198.51.100.123", "ntp.example.org"],
                "ipv6_pinholes": [{"address": "2001:db8:100::23", "proto": "tcp", "port": 443},
                                  {"address": "198.51.100.1", "proto": "tcp", "port": 443}],
                "capture_ring_packets": 0, "dns_cache_bytes": 1048576,
                "dns_queries_per_second_per_device": 2000000, "dns_waiting_per_device": 32,
                "update_confirm_window_seconds": 9, "update_signing_keys": ["abc"],
                "diagnostics": {"tcp_targets": ["203.0.113.80:443", "203.0.113.80"], "dns_name": "bad..name"}}"#,
        )
        .expect("routerd.json");
        let settings = file.settings();
        assert_eq!(settings.dns_upstreams.len(), 2);
        assert_eq!(settings.ntp_servers, ["198.51.100.123".parse::<IpAddr>().expect("literal")]);
        assert_eq!(settings.ipv6_pinholes.len(), 1);
        assert_eq!(settings.ipv6_pinholes[0].port, 443);
        assert_eq!(settings.capture_ring_packets, None, "0 is out of range");
        assert_eq!(settings.dns_cache_bytes, Some(1_048_576));
        assert_eq!(settings.dns_queries_per_second_per_device, None);
        assert_eq!(settings.dns_waiting_per_device, Some(32));
        assert_eq!(settings.update_confirm_window, None, "9 s is below the 10 s a version needs");
        assert!(settings.update_signing_keys.is_empty());
        assert_eq!(settings.diagnostics_tcp_targets.len(), 1);
        assert_eq!(settings.diagnostics_dns_name, None);
        // Every value left out is one the validation reports.
        assert_eq!(file.validate().len(), 9, "{:?}", file.validate());
    }
}
