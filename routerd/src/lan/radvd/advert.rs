//! Router advertisements (RFC 4861 §4.2) as bytes, and router solicitations checked on their bytes. The
//! kernel fills in the ICMPv6 checksum of raw ICMPv6 sockets.

use std::{net::Ipv6Addr, time::Duration};

pub(crate) const ROUTER_SOLICITATION: u8 = 133;
pub(crate) const ROUTER_ADVERTISEMENT: u8 = 134;

/// A prefix in a Prefix Information option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AdvertisedPrefix {
    /// A /64.
    pub prefix: Ipv6Addr,
    pub valid: Duration,
    /// Zero for a prefix that is going away (RFC 9096: clients stop using it for new connections at once).
    pub preferred: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Advert {
    pub router_lifetime: Duration,
    pub mtu: Option<u32>,
    pub source_mac: Option<[u8; 6]>,
    pub prefixes: Vec<AdvertisedPrefix>,
    pub dns_servers: Vec<Ipv6Addr>,
    pub search_domains: Vec<String>,
    /// Lifetime of the RDNSS and DNSSL options.
    pub dns_lifetime: Duration,
}

fn secs32(duration: Duration) -> [u8; 4] {
    u32::try_from(duration.as_secs()).unwrap_or(u32::MAX).to_be_bytes()
}

impl Advert {
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let lifetime = u16::try_from(self.router_lifetime.as_secs()).unwrap_or(9000);
        // type, code, checksum (kernel), hop limit 64, flags (no M/O: SLAAC and RDNSS), lifetime, reachable, retrans
        let mut packet = vec![ROUTER_ADVERTISEMENT, 0, 0, 0, 64, 0];
        packet.extend(lifetime.to_be_bytes());
        packet.extend([0; 8]);
        if let Some(mac) = self.source_mac {
            packet.extend([1, 1]);
            packet.extend(mac);
        }
        if let Some(mtu) = self.mtu {
            packet.extend([5, 1, 0, 0]);
            packet.extend(mtu.to_be_bytes());
        }
        for prefix in &self.prefixes {
            // Prefix Information: /64, on-link (L) and autonomous (A).
            packet.extend([3, 4, 64, 0xc0]);
            packet.extend(secs32(prefix.valid));
            packet.extend(secs32(prefix.preferred));
            packet.extend([0; 4]);
            packet.extend(prefix.prefix.octets());
        }
        if !self.dns_servers.is_empty() {
            packet.extend([25, (1 + 2 * self.dns_servers.len()) as u8, 0, 0]);
            packet.extend(secs32(self.dns_lifetime));
            for server in &self.dns_servers {
                packet.extend(server.octets());
            }
        }
        if !self.search_domains.is_empty() {
            let mut names = Vec::new();
            for domain in &self.search_domains {
                for label in domain.split('.').filter(|l| !l.is_empty() && l.len() < 64) {
                    names.push(label.len() as u8);
                    names.extend(label.as_bytes());
                }
                names.push(0);
            }
            while (8 + names.len()) % 8 != 0 {
                names.push(0);
            }
            packet.extend([31, ((8 + names.len()) / 8) as u8, 0, 0]);
            packet.extend(secs32(self.dns_lifetime));
            packet.extend(names);
        }
        packet
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadSolicitation {
    #[error("{0} bytes, shorter than a router solicitation")]
    Short(usize),
    #[error("ICMPv6 type {0}, code {1}: not a router solicitation")]
    NotSolicitation(u8, u8),
    #[error("an option with length 0 or past the end")]
    BadOption,
}

/// Checks a router solicitation (RFC 4861 §6.1.1: code 0, at least 8 bytes, every option of non-zero length
/// within the packet) and returns its source link-layer address, if it has one.
pub(crate) fn parse_solicitation(packet: &[u8]) -> Result<Option<[u8; 6]>, BadSolicitation> {
    if packet.len() < 8 {
        return Err(BadSolicitation::Short(packet.len()));
    }
    if packet[0] != ROUTER_SOLICITATION || packet[1] != 0 {
        return Err(BadSolicitation::NotSolicitation(packet[0], packet[1]));
    }
    let mut source = None;
    let mut at = 8;
    while at < packet.len() {
        let (kind, units) = (packet[at], packet.get(at + 1).copied().unwrap_or(0));
        let len = usize::from(units) * 8;
        if len == 0 || at + len > packet.len() {
            return Err(BadSolicitation::BadOption);
        }
        if kind == 1 && len == 8 {
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&packet[at + 2..at + 8]);
            source = Some(mac);
        }
        at += len;
    }
    Ok(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advert_carries_prefix_dns_and_search_domain_in_whole_8_byte_options() {
        let advert = Advert {
            router_lifetime: Duration::from_secs(1800),
            mtu: Some(1500),
            source_mac: Some([2, 0, 0, 0, 1, 0]),
            prefixes: vec![AdvertisedPrefix {
                prefix: "2001:db8:100::".parse().expect("literal"),
                valid: Duration::from_secs(600),
                preferred: Duration::from_secs(300),
            }],
            dns_servers: vec!["2001:db8:100::1".parse().expect("literal")],
            search_domains: vec!["lan".into()],
            dns_lifetime: Duration::from_secs(1200),
        };
        let bytes = advert.to_bytes();
        assert_eq!(bytes[0], ROUTER_ADVERTISEMENT);
        assert_eq!(u16::from_be_bytes([bytes[6], bytes[7]]), 1800);
        // Walk the options: each a whole number of 8-byte units, the lot filling the packet exactly.
        let mut at = 16;
        let mut kinds = Vec::new();
        while at < bytes.len() {
            kinds.push(bytes[at]);
            let len = usize::from(bytes[at + 1]) * 8;
            assert!(len > 0);
            at += len;
        }
        assert_eq!(at, bytes.len());
        assert_eq!(kinds, vec![1, 5, 3, 25, 31]);
        // The DNSSL carries "lan" as labels.
        let dnssl = bytes.len() - 16;
        assert_eq!(&bytes[dnssl + 8..dnssl + 13], &[3, b'l', b'a', b'n', 0]);
    }

    #[test]
    fn solicitations_are_checked() {
        let mut rs = vec![ROUTER_SOLICITATION, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 0, 0, 0, 2, 1];
        assert_eq!(parse_solicitation(&rs), Ok(Some([2, 0, 0, 0, 2, 1])));
        assert_eq!(parse_solicitation(&rs[..8]), Ok(None));
        assert_eq!(parse_solicitation(&rs[..4]), Err(BadSolicitation::Short(4)));
        assert_eq!(parse_solicitation(&rs[..12]), Err(BadSolicitation::BadOption));
        rs[9] = 0;
        assert_eq!(parse_solicitation(&rs), Err(BadSolicitation::BadOption), "a zero-length option would loop forever");
        rs[1] = 1;
        assert_eq!(parse_solicitation(&rs), Err(BadSolicitation::NotSolicitation(133, 1)));
    }
}
