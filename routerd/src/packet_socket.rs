//! An AF_PACKET socket that receives IPv4 UDP datagrams to one port on one interface, before the IP stack: a
//! DHCP server may answer by unicast to an address the interface does not have yet. A kernel BPF filter keeps
//! everything else (all the forwarded traffic of the uplink) out of the socket.

use std::io;

use crate::sys::packet::{self, Framing};

const ETH_P_IP: u16 = libc::ETH_P_IP as u16;

pub(crate) struct PacketSocket {
    socket: packet::PacketSocket,
}

/// An IPv4 header (checksummed) and a UDP header (checksum 0: none, allowed over IPv4) around `payload`, from
/// 0.0.0.0 to 255.255.255.255.
pub(crate) fn broadcast_udp(source_port: u16, destination_port: u16, payload: &[u8]) -> Vec<u8> {
    let total = 28 + payload.len();
    let mut packet = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0, 0, 64, 17, 0, 0];
    packet.extend([0, 0, 0, 0, 255, 255, 255, 255]);
    let mut sum: u32 = packet.chunks(2).map(|pair| u32::from(u16::from_be_bytes([pair[0], pair[1]]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let checksum = !(sum as u16);
    packet[10..12].copy_from_slice(&checksum.to_be_bytes());
    let udp_len = 8 + payload.len();
    packet.extend(source_port.to_be_bytes());
    packet.extend(destination_port.to_be_bytes());
    packet.extend([(udp_len >> 8) as u8, udp_len as u8, 0, 0]);
    packet.extend(payload);
    packet
}

/// For SOCK_DGRAM packet sockets (offsets start at the IP header): IPv4 UDP to `port`, not a fragment.
fn udp_port_filter(port: u16) -> Vec<libc::sock_filter> {
    crate::bpf::Program::default()
        .load_byte(9)
        .if_equal_else(17, "udp", "drop")
        .label("udp")
        .load_half(6)
        .if_any_bits(0x1fff, "drop")
        .load_ip_header_length(0)
        .load_half_indirect(2)
        .if_equal_else(u32::from(port), "accept", "drop")
        .label("accept")
        .ret(0x0004_0000)
        .label("drop")
        .ret(0)
        .assemble()
        // A fixed program with known labels always assembles.
        .unwrap_or_default()
}

impl PacketSocket {
    /// Opens the socket on interface `ifindex` for UDP datagrams to `port`.
    pub(crate) fn udp_port(ifindex: u32, port: u16) -> io::Result<PacketSocket> {
        let socket = packet::PacketSocket::open(ifindex, Framing::Packets, ETH_P_IP, &udp_port_filter(port))?;
        Ok(PacketSocket { socket })
    }

    /// Whole Ethernet frames in both directions on `ifindex` that pass `filter` (for the capture).
    pub(crate) fn frames(ifindex: u32, filter: &[libc::sock_filter]) -> io::Result<PacketSocket> {
        let socket = packet::PacketSocket::open(ifindex, Framing::Frames, libc::ETH_P_ALL as u16, filter)?;
        Ok(PacketSocket { socket })
    }

    /// Replaces the kernel filter (atomically: every frame meets the old program or the new one).
    pub(crate) fn set_filter(&self, filter: &[libc::sock_filter]) -> io::Result<()> {
        self.socket.set_filter(filter)
    }

    /// Sends an IPv4 UDP datagram from 0.0.0.0:`source_port` to 255.255.255.255:`destination_port` as an
    /// Ethernet broadcast on `ifindex`, headers built here: a DHCP client without an address must send from
    /// 0.0.0.0 (RFC 2131 §4.1), which a UDP socket cannot promise (the kernel picks another interface's address).
    pub(crate) async fn send_broadcast_udp(
        &self,
        ifindex: u32,
        source_port: u16,
        destination_port: u16,
        payload: &[u8],
    ) -> io::Result<()> {
        let packet = broadcast_udp(source_port, destination_port, payload);
        self.socket.send_broadcast(ifindex, ETH_P_IP, &packet).await
    }

    /// Receives the next packet (from its IP header on for `udp_port`, whole frames for `frames`).
    pub(crate) async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket.recv(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broadcast_from_nowhere_parses_back_with_a_valid_header_checksum() {
        let packet = broadcast_udp(68, 67, b"dhcp");
        let datagram = crate::uplink::ipv4_udp::parse(&packet).expect("valid");
        assert_eq!(datagram.source, std::net::Ipv4Addr::UNSPECIFIED);
        assert_eq!(datagram.destination, std::net::Ipv4Addr::BROADCAST);
        assert_eq!((datagram.source_port, datagram.destination_port), (68, 67));
        assert_eq!(datagram.payload, b"dhcp");
        // The one's-complement sum over a header with a correct checksum is 0xffff.
        let mut sum: u32 = packet[..20].chunks(2).map(|p| u32::from(u16::from_be_bytes([p[0], p[1]]))).sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(sum, 0xffff);
    }
}
