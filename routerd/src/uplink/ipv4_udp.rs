//! The IPv4 and UDP headers around a DHCPv4 message received on a packet socket (which sees packets before the
//! kernel's IP stack, so it also gets replies unicast to an address the interface does not have yet).

use std::net::Ipv4Addr;

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Datagram<'a> {
    pub source: Ipv4Addr,
    pub destination: Ipv4Addr,
    pub source_port: u16,
    pub destination_port: u16,
    pub payload: &'a [u8],
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HeaderError {
    #[error("shorter than an IPv4 header ({0} bytes)")]
    Short(usize),
    #[error("not IPv4 (version {0})")]
    NotIpv4(u8),
    #[error("not UDP (protocol {0})")]
    NotUdp(u8),
    #[error("a fragment")]
    Fragment,
    #[error("header or total length {0} does not fit the {1} bytes received")]
    BadLength(usize, usize),
}

/// Parses an IPv4 packet carrying UDP; lengths are checked against what was received.
pub(crate) fn parse(packet: &[u8]) -> Result<Datagram<'_>, HeaderError> {
    if packet.len() < 20 {
        return Err(HeaderError::Short(packet.len()));
    }
    let version = packet[0] >> 4;
    if version != 4 {
        return Err(HeaderError::NotIpv4(version));
    }
    let header_len = usize::from(packet[0] & 0x0f) * 4;
    let total_len = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    if header_len < 20 || total_len < header_len + 8 || total_len > packet.len() {
        return Err(HeaderError::BadLength(total_len.max(header_len), packet.len()));
    }
    if packet[9] != 17 {
        return Err(HeaderError::NotUdp(packet[9]));
    }
    let fragment = u16::from_be_bytes([packet[6], packet[7]]);
    if fragment & 0x3fff != 0 {
        return Err(HeaderError::Fragment);
    }
    let udp = &packet[header_len..total_len];
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if udp_len < 8 || udp_len > udp.len() {
        return Err(HeaderError::BadLength(udp_len, udp.len()));
    }
    let address = |at: usize| Ipv4Addr::new(packet[at], packet[at + 1], packet[at + 2], packet[at + 3]);
    Ok(Datagram {
        source: address(12),
        destination: address(16),
        source_port: u16::from_be_bytes([udp[0], udp[1]]),
        destination_port: u16::from_be_bytes([udp[2], udp[3]]),
        payload: &udp[8..udp_len],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(payload: &[u8]) -> Vec<u8> {
        let total = 28 + payload.len();
        let mut p = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64, 17, 0, 0];
        p.extend([198, 51, 100, 1, 198, 51, 100, 150]);
        let udp_len = 8 + payload.len();
        p.extend([0, 67, 0, 68, (udp_len >> 8) as u8, udp_len as u8, 0, 0]);
        p.extend(payload);
        p
    }

    #[test]
    fn parses_a_udp_datagram() {
        let bytes = packet(b"dhcp");
        let datagram = parse(&bytes).expect("valid");
        assert_eq!(datagram.source, Ipv4Addr::new(198, 51, 100, 1));
        assert_eq!((datagram.source_port, datagram.destination_port), (67, 68));
        assert_eq!(datagram.payload, b"dhcp");
    }

    #[test]
    fn rejects_what_does_not_add_up() {
        let good = packet(b"dhcp");
        assert_eq!(parse(&good[..10]), Err(HeaderError::Short(10)));
        let mut lying_total = good.clone();
        lying_total[3] = 200;
        assert!(matches!(parse(&lying_total), Err(HeaderError::BadLength(..))));
        let mut lying_udp = good.clone();
        lying_udp[25] = 200;
        assert!(matches!(parse(&lying_udp), Err(HeaderError::BadLength(..))));
        let mut tcp = good.clone();
        tcp[9] = 6;
        assert_eq!(parse(&tcp), Err(HeaderError::NotUdp(6)));
        let mut fragment = good;
        fragment[6] = 0x20;
        assert_eq!(parse(&fragment), Err(HeaderError::Fragment));
        // Every truncation is an error, never a panic.
        let bytes = packet(b"some payload");
        for len in 0..bytes.len() {
            let _ = parse(&bytes[..len]);
        }
    }
}
