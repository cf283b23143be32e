//! ICMP echo for ping, traceroute and the gateway checks: requests built and replies parsed here (pure, tested
//! on bytes), sent and received on a raw socket (routerd runs as root, so no ping_group_range is needed).
//!
//! A raw socket sees every ICMP packet of its family; replies are told apart by the identifier each socket
//! picks at random, and errors (time exceeded, unreachable) by the echo request they quote.

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6},
    time::{Duration, Instant},
};

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::UdpSocket;

use crate::uplink::entropy::{Entropy, SystemEntropy};

/// What answered a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReplyKind {
    EchoReply,
    TimeExceeded,
    /// Destination unreachable, with the ICMP code.
    Unreachable(u8),
}

/// A reply to one of our echo requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reply {
    pub from: IpAddr,
    pub kind: ReplyKind,
    pub sequence: u16,
    /// The reply's TTL (IPv4 only; 0 when unknown).
    pub ttl: u8,
    /// ICMP bytes (header and payload).
    pub bytes: usize,
}

/// An echo request with `size` payload bytes. ICMPv4 needs the checksum; for ICMPv6 the kernel fills it in.
pub(crate) fn echo_request(v6: bool, identifier: u16, sequence: u16, size: usize) -> Vec<u8> {
    let mut packet = vec![if v6 { 128 } else { 8 }, 0, 0, 0];
    packet.extend_from_slice(&identifier.to_be_bytes());
    packet.extend_from_slice(&sequence.to_be_bytes());
    packet.extend((0..size).map(|i| (i % 256) as u8));
    if !v6 {
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    packet
}

/// The Internet checksum (RFC 1071).
pub(crate) fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Parses what a raw IPv4 ICMP socket received (IP header included): a reply to `identifier`, or `None`.
pub(crate) fn parse_v4(packet: &[u8], identifier: u16) -> Option<Reply> {
    let header_len = usize::from(packet.first()? & 0x0f) * 4;
    let ttl = *packet.get(8)?;
    let from = Ipv4Addr::new(*packet.get(12)?, *packet.get(13)?, *packet.get(14)?, *packet.get(15)?);
    let icmp = packet.get(header_len..)?;
    let (kind, echo) = match *icmp.first()? {
        0 => (ReplyKind::EchoReply, icmp),
        11 => (ReplyKind::TimeExceeded, quoted_v4(icmp)?),
        3 => (ReplyKind::Unreachable(*icmp.get(1)?), quoted_v4(icmp)?),
        _ => return None,
    };
    let expected_type = if kind == ReplyKind::EchoReply { 0 } else { 8 };
    matching(echo, expected_type, identifier).map(|sequence| Reply {
        from: IpAddr::V4(from),
        kind,
        sequence,
        ttl,
        bytes: icmp.len(),
    })
}

/// The echo request an ICMPv4 error quotes (after its 8-byte header: the original IP header and 8 bytes).
fn quoted_v4(icmp: &[u8]) -> Option<&[u8]> {
    let inner = icmp.get(8..)?;
    let inner_header = usize::from(inner.first()? & 0x0f) * 4;
    (*inner.get(9)? == 1).then_some(())?;
    inner.get(inner_header..)
}

/// Parses what a raw ICMPv6 socket received (no IPv6 header) from `from`.
pub(crate) fn parse_v6(icmp: &[u8], from: Ipv6Addr, identifier: u16) -> Option<Reply> {
    let (kind, echo) = match *icmp.first()? {
        129 => (ReplyKind::EchoReply, icmp),
        // The quoted packet: 8 bytes of ICMPv6 header, 40 of IPv6 header (next header 58 = ICMPv6).
        3 if *icmp.get(8 + 6)? == 58 => (ReplyKind::TimeExceeded, icmp.get(48..)?),
        1 if *icmp.get(8 + 6)? == 58 => (ReplyKind::Unreachable(*icmp.get(1)?), icmp.get(48..)?),
        _ => return None,
    };
    let expected_type = if kind == ReplyKind::EchoReply { 129 } else { 128 };
    matching(echo, expected_type, identifier).map(|sequence| Reply {
        from: IpAddr::V6(from),
        kind,
        sequence,
        ttl: 0,
        bytes: icmp.len(),
    })
}

fn matching(echo: &[u8], expected_type: u8, identifier: u16) -> Option<u16> {
    (*echo.first()? == expected_type).then_some(())?;
    let id = u16::from_be_bytes([*echo.get(4)?, *echo.get(5)?]);
    let sequence = u16::from_be_bytes([*echo.get(6)?, *echo.get(7)?]);
    (id == identifier).then_some(sequence)
}

/// A raw ICMP socket of one family with its own echo identifier. tokio has no raw socket type; its UDP socket
/// only does sendto/recvfrom on the descriptor, which is what a raw socket needs.
pub(crate) struct Pinger {
    socket: UdpSocket,
    v6: bool,
    identifier: u16,
    /// Interface index for link-local IPv6 destinations.
    scope: u32,
}

impl Pinger {
    pub(crate) fn new(v6: bool, interface: Option<&str>) -> io::Result<Pinger> {
        let socket = if v6 {
            Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?
        } else {
            Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?
        };
        socket.set_nonblocking(true)?;
        let scope = match interface {
            Some(name) => {
                socket.bind_device(Some(name.as_bytes()))?;
                crate::sys::interfaces::index(name)?
            }
            None => 0,
        };
        let identifier = SystemEntropy::default().next_u32() as u16;
        let socket = UdpSocket::from_std(std::net::UdpSocket::from(socket))?;
        Ok(Pinger { socket, v6, identifier, scope })
    }

    pub(crate) fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        let socket = SockRef::from(&self.socket);
        if self.v6 { socket.set_unicast_hops_v6(ttl) } else { socket.set_ttl_v4(ttl) }
    }

    /// Sends an echo request.
    pub(crate) fn send(&self, destination: IpAddr, sequence: u16, size: usize) -> io::Result<()> {
        let address: SocketAddr = match destination {
            IpAddr::V6(v6) => {
                SocketAddr::V6(SocketAddrV6::new(v6, 0, 0, if v6.is_unicast_link_local() { self.scope } else { 0 }))
            }
            IpAddr::V4(v4) => SocketAddr::new(IpAddr::V4(v4), 0),
        };
        let packet = echo_request(self.v6, self.identifier, sequence, size);
        // Straight to the socket: tokio's own try_send_to refuses until its reactor has seen the socket writable.
        SockRef::from(&self.socket).send_to(&packet, &address.into()).map(drop)
    }

    /// The next reply to this pinger until `deadline`; `Ok(None)` when none came.
    pub(crate) async fn receive(&self, deadline: Instant) -> io::Result<Option<Reply>> {
        let mut buffer = [0u8; 2048];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let Ok(received) = tokio::time::timeout(left, self.socket.recv_from(&mut buffer)).await else {
                return Ok(None);
            };
            let (len, from) = received?;
            let bytes = &buffer[..len];
            let reply = match from {
                SocketAddr::V6(from) if self.v6 => parse_v6(bytes, *from.ip(), self.identifier),
                _ if !self.v6 => parse_v4(bytes, self.identifier),
                _ => None,
            };
            if let Some(reply) = reply {
                return Ok(Some(reply));
            }
        }
    }

    /// One echo round trip (request `sequence`), or `Ok(None)` when nothing answered within `wait`.
    pub(crate) async fn ping_once(
        &self,
        destination: IpAddr,
        sequence: u16,
        size: usize,
        wait: Duration,
    ) -> io::Result<Option<(Reply, Duration)>> {
        let started = Instant::now();
        self.send(destination, sequence, size)?;
        let deadline = started + wait;
        while let Some(reply) = self.receive(deadline).await? {
            if reply.sequence == sequence {
                return Ok(Some((reply, started.elapsed())));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_verify() {
        let packet = echo_request(false, 0x1234, 7, 56);
        assert_eq!(packet.len(), 64);
        assert_eq!(checksum(&packet), 0, "a packet with its checksum sums to zero");
        // RFC 1071's example bytes.
        assert_eq!(checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), !0xddf2);
    }

    fn ipv4_header(from: [u8; 4], ttl: u8, protocol: u8) -> Vec<u8> {
        let mut header = vec![0x45, 0, 0, 0, 0, 0, 0, 0, ttl, protocol, 0, 0];
        header.extend_from_slice(&from);
        header.extend_from_slice(&[198, 51, 100, 150]);
        header
    }

    #[test]
    fn ipv4_replies_and_errors_are_matched_by_identifier() {
        let mut reply = ipv4_header([198, 51, 100, 1], 63, 1);
        let mut echo = echo_request(false, 0xbeef, 3, 8);
        echo[0] = 0;
        reply.extend_from_slice(&echo);
        assert_eq!(
            parse_v4(&reply, 0xbeef),
            Some(Reply {
                from: "198.51.100.1".parse().expect("literal"),
                kind: ReplyKind::EchoReply,
                sequence: 3,
                ttl: 63,
                bytes: 16
            })
        );
        assert_eq!(parse_v4(&reply, 0xbeee), None, "another pinger's reply");

        // Time exceeded from a router on the way, quoting our request.
        let mut error = ipv4_header([203, 0, 113, 1], 64, 1);
        error.extend_from_slice(&[11, 0, 0, 0, 0, 0, 0, 0]);
        error.extend(ipv4_header([198, 51, 100, 150], 1, 1));
        error.extend_from_slice(&echo_request(false, 0xbeef, 9, 0));
        let parsed = parse_v4(&error, 0xbeef).expect("matched");
        assert_eq!((parsed.kind, parsed.sequence), (ReplyKind::TimeExceeded, 9));
        assert_eq!(parsed.from, "203.0.113.1".parse::<IpAddr>().expect("literal"));
    }

    #[test]
    fn ipv6_unreachable_quotes_the_request() {
        let mut error = vec![1, 3, 0, 0, 0, 0, 0, 0];
        let mut inner = vec![0x60, 0, 0, 0, 0, 16, 58, 1];
        inner.extend_from_slice(&[0; 32]);
        error.extend(inner);
        error.extend(echo_request(true, 0x4242, 5, 8));
        let from: Ipv6Addr = "2001:db8::1".parse().expect("literal");
        let parsed = parse_v6(&error, from, 0x4242).expect("matched");
        assert_eq!((parsed.kind, parsed.sequence), (ReplyKind::Unreachable(3), 5));
    }

    #[test]
    fn truncated_and_foreign_packets_are_ignored() {
        let mut reply = ipv4_header([198, 51, 100, 1], 63, 1);
        let mut echo = echo_request(false, 0xbeef, 3, 8);
        echo[0] = 0;
        reply.extend_from_slice(&echo);
        for len in 0..24 {
            assert_eq!(parse_v4(&reply[..len], 0xbeef), None, "{len} bytes");
        }
        let from: Ipv6Addr = "fe80::1".parse().expect("literal");
        // A neighbour advertisement, and an error quoting a UDP packet.
        assert_eq!(parse_v6(&[136, 0, 0, 0, 0, 0, 0, 0], from, 1), None);
        let mut udp_error = vec![1, 4, 0, 0, 0, 0, 0, 0, 0x60, 0, 0, 0, 0, 8, 17, 64];
        udp_error.extend_from_slice(&[0; 40]);
        assert_eq!(parse_v6(&udp_error, from, 0), None);
        for len in 0..8 {
            assert_eq!(parse_v6(&echo_request(true, 1, 1, 0)[..len], from, 1), None);
        }
    }
}
