//! The lab's address plan: documentation ranges only (RFC 5737, RFC 3849), so nothing can leak anywhere real.
//!
//! ```text
//!  internet host 203.0.113.80, 2001:db8:ffff::80 (on the ISP's lo)
//!  isp ── isp0 198.51.100.1/24, 2001:db8:0:1::1/64 ── veth ── uplink0 ── router ── lan0 (bridge) 192.0.2.1/24
//!                                                                                    ├── lan0p1 ── lan1: eth0
//!                                                                                    └── lan0p2 ── lan2: eth0
//! ```

use std::net::{Ipv4Addr, Ipv6Addr};

/// The ISP's side of the uplink, its DHCPv4 server, resolver and IPv4 gateway.
pub const ISP_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
pub const ISP_V4_PREFIX_LEN: u8 = 24;
pub const ISP_DHCP4_POOL: (Ipv4Addr, Ipv4Addr) = (Ipv4Addr::new(198, 51, 100, 100), Ipv4Addr::new(198, 51, 100, 199));

/// The ISP's IPv6 address on the uplink link: DHCPv6 server and resolver.
pub const ISP_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 1);
pub const ISP_LINK_V6_PREFIX: &str = "2001:db8:0:1::/64";
pub const ISP_DHCP6_POOL: (&str, &str) = ("2001:db8:0:1::1000", "2001:db8:0:1::1fff");
/// Delegated prefixes come out of this /40, one /56 per customer.
pub const ISP_PD_POOL: &str = "2001:db8:100::";
pub const ISP_PD_POOL_LEN: u8 = 40;
pub const ISP_PD_DELEGATED_LEN: u8 = 56;

/// The "internet": an HTTP host (and the address the resolver's example names point to).
pub const INTERNET_HOST_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 80);
pub const INTERNET_HOST_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0x80);

/// Names the ISP's resolver answers (everything else is NXDOMAIN; it never asks the real root servers).
pub const INTERNET_NAMES: &[&str] =
    &["example.com", "www.example.com", "example.net", "example.org", "www.example.org"];

/// A zone whose every name the ISP's resolver answers from memory (`*.bench.example`), for benchmarks that need
/// many distinct names, cached or never asked before.
pub const BENCH_ZONE: &str = "bench.example";

/// A name with a TXT answer too big for a 512-byte UDP reply: the resolver answers over UDP with TC set, and
/// routerd must ask again over TCP.
pub const LARGE_TXT_NAME: &str = "large.example.com";
pub const LARGE_TXT_STRINGS: usize = 3;

/// Public names the ISP's resolver points into private space, as a DNS rebinding attack would: routerd must
/// drop the first and let the second through (it is on the lab's allowlist). Only DNS data: no such address
/// exists anywhere in the lab.
pub const REBINDING_NAME: (&str, &str) = ("rebind.example.net", "192.168.77.7");
pub const ALLOWLISTED_PRIVATE_NAME: (&str, &str) = ("nas.example.org", "10.77.0.7");

/// The router's IPv4 address on lan0 (from the generated interfaces.json), and the LAN's prefix length.
pub const ROUTER_LAN_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const LAN_V4_PREFIX_LEN: u8 = 24;

/// The addresses routerd's DHCP server hands out in the lab (routerd.json `dhcp_ranges`).
pub const LAN_DHCP_RANGE: &str = "192.0.2.100-192.0.2.199";

/// The port forward in the lab's generated portforwardings.json: the uplink's port 8080 to lan1's port 80.
pub const DEMO_FORWARD_PORT: u16 = 8080;

/// A static address for LAN device `n` (1-based), for tests that do not use DHCP.
pub fn lan_device_static_v4(n: usize) -> Ipv4Addr {
    let host = u8::try_from(10 + n).unwrap_or(250);
    Ipv4Addr::new(192, 0, 2, host)
}

/// Locally administered MAC addresses, fixed so that tests and captures are reproducible.
pub const ISP_MAC: &str = "02:00:00:00:99:01";
pub const UPLINK_MAC: &str = "02:00:00:00:00:01";
pub const LAN_BRIDGE_MAC: &str = "02:00:00:00:01:00";
pub fn lan_device_mac(n: usize) -> String {
    format!("02:00:00:00:02:{:02x}", n.min(255))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_is_in_documentation_ranges() {
        let v4_doc = |a: Ipv4Addr| matches!(a.octets(), [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _]);
        for addr in
            [ISP_V4, ISP_DHCP4_POOL.0, ISP_DHCP4_POOL.1, INTERNET_HOST_V4, ROUTER_LAN_V4, lan_device_static_v4(3)]
        {
            assert!(v4_doc(addr), "{addr} is not a documentation address");
        }
        for addr in [ISP_V6, INTERNET_HOST_V6] {
            assert_eq!(addr.segments()[..2], [0x2001, 0xdb8], "{addr}");
        }
        for text in [ISP_LINK_V6_PREFIX, ISP_DHCP6_POOL.0, ISP_DHCP6_POOL.1, ISP_PD_POOL] {
            assert!(text.starts_with("2001:db8:"), "{text}");
        }
    }
}
