//! DHCP for network boots only: it answers PXE clients (vendor class `PXEClient…`), or with `--mac` only that
//! machine, and stays silent to every other device on the network, so running routerd-recover on a network
//! with other devices takes none of them over. I/O-free: bytes in, bytes out.

use std::{collections::BTreeMap, net::Ipv4Addr};

use dhcproto::{
    Decodable, Decoder, Encodable,
    v4::{DhcpOption, Message, MessageType, Opcode, OptionCode},
};

/// Options read from clients (see `routerd::dhcp4_wire::sanitize`).
const KNOWN_OPTIONS: &[routerd::dhcp4_wire::KnownOption] = &[
    (50, 4, 1), // requested address
    (53, 1, 1), // message type
    (54, 4, 1), // server identifier
    (60, 0, 1), // vendor class
];

/// At most this many machines get an address (a network boot serves one router; the rest is a bound).
pub const MAX_CLIENTS: usize = 16;
pub const LEASE_SECONDS: u32 = 3600;
pub const BOOT_FILE: &str = "pxelinux.0";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub server: Ipv4Addr,
    pub prefix_len: u8,
    /// Only this machine, whatever it says it is.
    pub only_mac: Option<[u8; 6]>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Ignored {
    Malformed(String),
    NotPxe,
    OtherMac,
    NotForUs,
    Full,
}

pub struct PxeDhcp {
    config: Config,
    leases: BTreeMap<[u8; 6], Ipv4Addr>,
}

impl PxeDhcp {
    pub fn new(config: Config) -> PxeDhcp {
        PxeDhcp { config, leases: BTreeMap::new() }
    }

    /// The reply to one packet received on port 67, or why there is none.
    pub fn handle(&mut self, payload: &[u8]) -> Result<Vec<u8>, Ignored> {
        let clean = routerd::dhcp4_wire::sanitize(payload, KNOWN_OPTIONS).map_err(|e| Ignored::Malformed(e.0))?;
        let request = Message::decode(&mut Decoder::new(&clean)).map_err(|e| Ignored::Malformed(e.to_string()))?;
        if request.opcode() != Opcode::BootRequest || request.hlen() != 6 {
            return Err(Ignored::NotForUs);
        }
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&request.chaddr()[..6]);
        match self.config.only_mac {
            Some(only) if only != mac => return Err(Ignored::OtherMac),
            Some(_) => {}
            None if !is_pxe(&request) => return Err(Ignored::NotPxe),
            None => {}
        }
        let kind = match request.opts().get(OptionCode::MessageType) {
            Some(DhcpOption::MessageType(kind)) => *kind,
            _ => return Err(Ignored::NotForUs),
        };
        match kind {
            MessageType::Discover => {
                let address = self.address_for(mac)?;
                Ok(self.reply(&request, MessageType::Offer, address))
            }
            MessageType::Request => {
                if let Some(DhcpOption::ServerIdentifier(server)) = request.opts().get(OptionCode::ServerIdentifier)
                    && *server != self.config.server
                {
                    return Err(Ignored::NotForUs);
                }
                let address = self.address_for(mac)?;
                let requested = match request.opts().get(OptionCode::RequestedIpAddress) {
                    Some(DhcpOption::RequestedIpAddress(requested)) => *requested,
                    _ => request.ciaddr(),
                };
                let kind = if requested == address { MessageType::Ack } else { MessageType::Nak };
                Ok(self.reply(&request, kind, if kind == MessageType::Ack { address } else { Ipv4Addr::UNSPECIFIED }))
            }
            _ => Err(Ignored::NotForUs),
        }
    }

    /// The machine's address: the one it had, else the next free one after the server's.
    fn address_for(&mut self, mac: [u8; 6]) -> Result<Ipv4Addr, Ignored> {
        if let Some(address) = self.leases.get(&mac) {
            return Ok(*address);
        }
        if self.leases.len() >= MAX_CLIENTS {
            return Err(Ignored::Full);
        }
        let server = u32::from(self.config.server);
        let host_bits = 32 - u32::from(self.config.prefix_len);
        let network = server & !((1u64 << host_bits) - 1) as u32;
        let broadcast = network | ((1u64 << host_bits) - 1) as u32;
        let taken: Vec<Ipv4Addr> = self.leases.values().copied().collect();
        let free = (1..=MAX_CLIENTS as u32 * 2)
            .map(|offset| server.wrapping_add(offset))
            .chain((network + 1..server).rev())
            .map(Ipv4Addr::from)
            .find(|a| u32::from(*a) > network && u32::from(*a) < broadcast && !taken.contains(a))
            .ok_or(Ignored::Full)?;
        self.leases.insert(mac, free);
        Ok(free)
    }

    fn reply(&self, request: &Message, kind: MessageType, yiaddr: Ipv4Addr) -> Vec<u8> {
        let zero = Ipv4Addr::UNSPECIFIED;
        let server = self.config.server;
        let mut reply = Message::new_with_id(request.xid(), zero, yiaddr, server, zero, &request.chaddr()[..6]);
        reply.set_opcode(Opcode::BootReply).set_flags(request.flags());
        let opts = reply.opts_mut();
        opts.insert(DhcpOption::MessageType(kind));
        opts.insert(DhcpOption::ServerIdentifier(server));
        if kind != MessageType::Nak {
            reply.set_fname_str(BOOT_FILE);
            let opts = reply.opts_mut();
            opts.insert(DhcpOption::AddressLeaseTime(LEASE_SECONDS));
            opts.insert(DhcpOption::SubnetMask(Ipv4Addr::from_bits(
                u32::MAX << (32 - u32::from(self.config.prefix_len)),
            )));
            opts.insert(DhcpOption::TFTPServerName(server.to_string().into_bytes()));
            opts.insert(DhcpOption::BootfileName(BOOT_FILE.as_bytes().to_vec()));
            opts.insert(DhcpOption::ClassIdentifier(b"PXEClient".to_vec()));
        }
        reply.to_vec().unwrap_or_default()
    }
}

fn is_pxe(request: &Message) -> bool {
    matches!(request.opts().get(OptionCode::ClassIdentifier), Some(DhcpOption::ClassIdentifier(class)) if class.starts_with(b"PXEClient"))
}

/// `52:54:00:12:34:56`
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = text.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(parts) {
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    Some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

    fn server(only_mac: Option<[u8; 6]>) -> PxeDhcp {
        PxeDhcp::new(Config { server: SERVER, prefix_len: 24, only_mac })
    }

    fn message(kind: MessageType, mac: [u8; 6], class: Option<&[u8]>, requested: Option<Ipv4Addr>) -> Vec<u8> {
        let zero = Ipv4Addr::UNSPECIFIED;
        let mut message = Message::new_with_id(0x1234, zero, zero, zero, zero, &mac);
        message.opts_mut().insert(DhcpOption::MessageType(kind));
        if let Some(class) = class {
            message.opts_mut().insert(DhcpOption::ClassIdentifier(class.to_vec()));
        }
        if let Some(requested) = requested {
            message.opts_mut().insert(DhcpOption::RequestedIpAddress(requested));
            message.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
        }
        message.to_vec().expect("encodes")
    }

    fn decode(bytes: &[u8]) -> Message {
        Message::decode(&mut Decoder::new(bytes)).expect("decodes")
    }

    const IPXE: &[u8] = b"PXEClient:Arch:00000:UNDI:002001";
    const ROUTER: [u8; 6] = [0x02, 0, 0, 0, 1, 0x0a];

    #[test]
    fn a_pxe_client_is_offered_an_address_and_the_boot_file() {
        let mut dhcp = server(None);
        let offer = decode(&dhcp.handle(&message(MessageType::Discover, ROUTER, Some(IPXE), None)).expect("offer"));
        assert_eq!(offer.opts().get(OptionCode::MessageType), Some(&DhcpOption::MessageType(MessageType::Offer)));
        assert_eq!(offer.yiaddr(), Ipv4Addr::new(192, 0, 2, 11));
        assert_eq!(offer.siaddr(), SERVER);
        let file = offer.fname().unwrap_or_default();
        assert_eq!(file.split(|b| *b == 0).next(), Some(BOOT_FILE.as_bytes()));
        let ack = decode(
            &dhcp.handle(&message(MessageType::Request, ROUTER, Some(IPXE), Some(offer.yiaddr()))).expect("ack"),
        );
        assert_eq!(ack.opts().get(OptionCode::MessageType), Some(&DhcpOption::MessageType(MessageType::Ack)));
        assert_eq!(ack.yiaddr(), offer.yiaddr());
        let wrong = decode(
            &dhcp
                .handle(&message(MessageType::Request, ROUTER, Some(IPXE), Some(Ipv4Addr::new(192, 0, 2, 99))))
                .expect("nak"),
        );
        assert_eq!(wrong.opts().get(OptionCode::MessageType), Some(&DhcpOption::MessageType(MessageType::Nak)));
    }

    #[test]
    fn other_devices_get_no_answer() {
        let mut dhcp = server(None);
        let laptop = [0x02, 0, 0, 0, 9, 9];
        assert_eq!(dhcp.handle(&message(MessageType::Discover, laptop, None, None)), Err(Ignored::NotPxe));
        assert_eq!(
            dhcp.handle(&message(MessageType::Discover, laptop, Some(b"udhcp 1.35.0"), None)),
            Err(Ignored::NotPxe)
        );
        let mut only_router = server(Some(ROUTER));
        assert_eq!(
            only_router.handle(&message(MessageType::Discover, laptop, Some(IPXE), None)),
            Err(Ignored::OtherMac)
        );
        // With --mac the router is served even when its firmware does not say PXEClient.
        assert!(only_router.handle(&message(MessageType::Discover, ROUTER, None, None)).is_ok());
    }

    #[test]
    fn garbage_and_floods_are_bounded() {
        let mut dhcp = server(None);
        assert!(matches!(dhcp.handle(b"not dhcp"), Err(Ignored::Malformed(_))));
        for n in 0..MAX_CLIENTS as u8 {
            assert!(dhcp.handle(&message(MessageType::Discover, [2, 0, 0, 0, 2, n], Some(IPXE), None)).is_ok());
        }
        assert_eq!(
            dhcp.handle(&message(MessageType::Discover, [2, 0, 0, 0, 3, 0], Some(IPXE), None)),
            Err(Ignored::Full)
        );
        assert_eq!(dhcp.leases.len(), MAX_CLIENTS);
        assert!(!dhcp.leases.values().any(|a| *a == SERVER));
    }

    #[test]
    fn macs_parse_with_colons_or_dashes() {
        assert_eq!(parse_mac("02:00:00:00:01:0A"), Some(ROUTER));
        assert_eq!(parse_mac("02-00-00-00-01-0a"), Some(ROUTER));
        assert_eq!(parse_mac("02:00:00:00:01"), None);
        assert_eq!(parse_mac("02:00:00:00:01:0g"), None);
    }
}
