//! Which addresses and names the DNS server treats as local: private ranges (for rebinding protection and the
//! RFC 6303 reverse zones) and the rebinding allowlist.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Addresses a public name must never point to (RFC 1918, loopback, link-local, shared CGNAT space, "this
/// network", unique local and IPv4-mapped forms of those): an attacker's name resolving there lets a web page
/// talk to devices in the home.
pub(crate) fn is_private(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_unicast_link_local()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || v6.to_ipv4_mapped().is_some_and(is_private_v4)
        }
    }
}

fn is_private_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    v4.is_private() || v4.is_loopback() || v4.is_link_local() || a == 0 || (a == 100 && (64..128).contains(&b))
}

/// Whether `name` (lower case, no trailing dot) is `domain` or below it.
pub(crate) fn is_within(name: &str, domain: &str) -> bool {
    let (name, domain) = (name.as_bytes(), domain.trim_end_matches('.').as_bytes());
    let Some(start) = name.len().checked_sub(domain.len()) else { return false };
    name[start..].eq_ignore_ascii_case(domain) && (start == 0 || name[start - 1] == b'.')
}

/// The address a reverse-lookup name stands for (`4.3.2.1.in-addr.arpa`, nibbles under `ip6.arpa`).
pub(crate) fn reverse_address(name: &str) -> Option<IpAddr> {
    if let Some(rest) = name.strip_suffix(".in-addr.arpa") {
        let octets: Vec<u8> = rest.split('.').map(|p| p.parse().ok()).collect::<Option<_>>()?;
        let [d, c, b, a] = <[u8; 4]>::try_from(octets).ok()?;
        return Some(IpAddr::V4(Ipv4Addr::new(a, b, c, d)));
    }
    let rest = name.strip_suffix(".ip6.arpa")?;
    let nibbles: Vec<u8> = rest
        .split('.')
        .map(|n| (n.len() == 1).then(|| u8::from_str_radix(n, 16).ok()).flatten())
        .collect::<Option<_>>()?;
    if nibbles.len() != 32 {
        return None;
    }
    let value = nibbles.iter().rev().fold(0u128, |acc, n| (acc << 4) | u128::from(*n));
    Some(IpAddr::V6(Ipv6Addr::from(value)))
}

/// Reverse zones of private space (RFC 6303) that are answered locally and never forwarded, for addresses
/// that are not in the reverse name itself (partial names like `168.192.in-addr.arpa`).
pub(crate) fn is_private_reverse_zone(name: &str) -> bool {
    const ZONES: &[&str] = &[
        "10.in-addr.arpa",
        "168.192.in-addr.arpa",
        "127.in-addr.arpa",
        "254.169.in-addr.arpa",
        "0.in-addr.arpa",
        "d.f.ip6.arpa",
        "8.e.f.ip6.arpa",
        "9.e.f.ip6.arpa",
        "a.e.f.ip6.arpa",
        "b.e.f.ip6.arpa",
    ];
    if !is_within(name, "arpa") {
        return false;
    }
    let in_172_16 = name
        .strip_suffix(".172.in-addr.arpa")
        .and_then(|rest| rest.rsplit('.').next())
        .and_then(|octet| octet.parse::<u8>().ok())
        .is_some_and(|octet| (16..32).contains(&octet));
    ZONES.iter().any(|zone| is_within(name, zone)) || in_172_16 || reverse_address(name).is_some_and(is_private)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges() {
        for private in [
            "10.1.2.3",
            "192.168.1.1",
            "172.20.0.1",
            "127.0.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.1.2.3",
            "fd00::1",
            "fe80::1",
            "::1",
            "::ffff:192.168.1.1",
        ] {
            assert!(is_private(private.parse().expect("literal")), "{private}");
        }
        for public in ["203.0.113.80", "192.0.2.1", "8.8.8.8", "2001:db8::1", "100.128.0.1"] {
            assert!(!is_private(public.parse().expect("literal")), "{public}");
        }
    }

    #[test]
    fn reverse_names() {
        assert_eq!(reverse_address("11.2.0.192.in-addr.arpa"), Some("192.0.2.11".parse().expect("literal")));
        let v6 = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.8.b.d.0.1.0.0.2.ip6.arpa";
        assert_eq!(reverse_address(v6), Some("2001:db8:100::1".parse().expect("literal")));
        assert_eq!(reverse_address("x.2.0.192.in-addr.arpa"), None);
        assert!(is_private_reverse_zone("168.192.in-addr.arpa"));
        assert!(is_private_reverse_zone("5.0.0.10.in-addr.arpa"));
        assert!(is_private_reverse_zone("1.20.172.in-addr.arpa"));
        assert!(!is_private_reverse_zone("80.113.0.203.in-addr.arpa"));
        assert!(is_private_reverse_zone("31.172.in-addr.arpa") && is_private_reverse_zone("x.16.172.in-addr.arpa"));
        assert!(!is_private_reverse_zone("15.172.in-addr.arpa") && !is_private_reverse_zone("32.172.in-addr.arpa"));
        assert!(!is_private_reverse_zone("172.in-addr.arpa") && !is_private_reverse_zone("www.example.org"));
        assert!(is_within("a.lan", "lan") && is_within("lan", "lan.") && !is_within("plan", "lan"));
        assert!(is_within("nas.example.org", "Example.ORG") && !is_within("lan", "a.lan"));
    }
}
