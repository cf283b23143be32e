//! Reads classic pcap files (as the fiber7 captures are) down to UDP payloads, for replay tests.

use std::net::IpAddr;

pub(crate) struct UdpDatagram {
    pub source: IpAddr,
    pub destination: IpAddr,
    pub source_port: u16,
    pub destination_port: u16,
    pub payload: Vec<u8>,
}

/// UDP datagrams of every Ethernet frame in a pcap file (IPv4 and IPv6, no extension headers).
pub(crate) fn udp_datagrams(bytes: &[u8]) -> Vec<UdpDatagram> {
    let mut out = Vec::new();
    let little_endian = bytes.get(..4) == Some(&[0xd4, 0xc3, 0xb2, 0xa1]);
    let u32_at = |b: &[u8], at: usize| -> usize {
        let v: [u8; 4] = b[at..at + 4].try_into().unwrap_or_default();
        (if little_endian { u32::from_le_bytes(v) } else { u32::from_be_bytes(v) }) as usize
    };
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let captured = u32_at(bytes, at + 8);
        let frame = &bytes[at + 16..(at + 16 + captured).min(bytes.len())];
        at += 16 + captured;
        if frame.len() < 14 {
            continue;
        }
        let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
        let ip = &frame[14..];
        let (source, destination, udp) = match ethertype {
            0x0800 if ip.len() >= 20 && ip[9] == 17 => {
                let header = usize::from(ip[0] & 0x0f) * 4;
                let s: [u8; 4] = ip[12..16].try_into().unwrap_or_default();
                let d: [u8; 4] = ip[16..20].try_into().unwrap_or_default();
                (IpAddr::from(s), IpAddr::from(d), &ip[header..])
            }
            0x86dd if ip.len() >= 40 && ip[6] == 17 => {
                let s: [u8; 16] = ip[8..24].try_into().unwrap_or_default();
                let d: [u8; 16] = ip[24..40].try_into().unwrap_or_default();
                (IpAddr::from(s), IpAddr::from(d), &ip[40..])
            }
            _ => continue,
        };
        if udp.len() < 8 {
            continue;
        }
        out.push(UdpDatagram {
            source,
            destination,
            source_port: u16::from_be_bytes([udp[0], udp[1]]),
            destination_port: u16::from_be_bytes([udp[2], udp[3]]),
            payload: udp[8..].to_vec(),
        });
    }
    out
}
