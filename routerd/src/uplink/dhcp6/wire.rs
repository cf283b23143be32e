//! Reading DHCPv6 server messages (Advertise, Reply) on their bytes. dhcproto's decoder trusts option lengths
//! (a Status Code shorter than 2 bytes underflows; Preference ignores its length), so replies are parsed here,
//! strictly: an option that overruns its container or has an impossible length rejects the whole message.
//! Outgoing messages are built with dhcproto.

use std::net::Ipv6Addr;

pub(crate) const ADVERTISE: u8 = 2;
pub(crate) const REPLY: u8 = 7;
pub(crate) const RECONFIGURE: u8 = 10;

/// RFC 8415 status codes the client acts on.
pub(crate) const STATUS_SUCCESS: u16 = 0;
pub(crate) const STATUS_NO_ADDRS_AVAIL: u16 = 2;
pub(crate) const STATUS_NO_BINDING: u16 = 3;
pub(crate) const STATUS_NOT_ON_LINK: u16 = 4;
pub(crate) const STATUS_USE_MULTICAST: u16 = 5;
pub(crate) const STATUS_NO_PREFIX_AVAIL: u16 = 6;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    pub code: u16,
    pub message: String,
}

impl Status {
    pub fn name(&self) -> &'static str {
        match self.code {
            STATUS_SUCCESS => "Success",
            1 => "UnspecFail",
            STATUS_NO_ADDRS_AVAIL => "NoAddrsAvail",
            STATUS_NO_BINDING => "NoBinding",
            STATUS_NOT_ON_LINK => "NotOnLink",
            STATUS_USE_MULTICAST => "UseMulticast",
            STATUS_NO_PREFIX_AVAIL => "NoPrefixAvail",
            _ => "unknown status",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IaAddress {
    pub address: Ipv6Addr,
    pub preferred: u32,
    pub valid: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IaPrefix {
    pub prefix: Ipv6Addr,
    pub length: u8,
    pub preferred: u32,
    pub valid: u32,
}

/// An IA_NA or IA_PD as the server sent it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ia {
    pub iaid: u32,
    pub t1: u32,
    pub t2: u32,
    pub addresses: Vec<IaAddress>,
    pub prefixes: Vec<IaPrefix>,
    pub status: Option<Status>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerMessage {
    pub message_type: u8,
    pub transaction_id: u32,
    pub client_id: Option<Vec<u8>>,
    pub server_id: Option<Vec<u8>>,
    pub status: Option<Status>,
    pub preference: u8,
    pub ia_na: Vec<Ia>,
    pub ia_pd: Vec<Ia>,
    pub dns_servers: Vec<Ipv6Addr>,
    /// NTP servers: option 56's server addresses (names and multicast addresses left out) and option 31's.
    pub ntp_servers: Vec<Ipv6Addr>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WireError {
    #[error("{0} bytes, shorter than a DHCPv6 header")]
    Short(usize),
    #[error("option {code} claims {len} bytes, {left} are left")]
    Overrun { code: u16, len: usize, left: usize },
    #[error("option {code} has an impossible length {len}")]
    BadLength { code: u16, len: usize },
}

/// Walks `bytes` as a sequence of options, calling `each(code, value)`.
fn options(bytes: &[u8], mut each: impl FnMut(u16, &[u8]) -> Result<(), WireError>) -> Result<(), WireError> {
    let mut at = 0;
    while at < bytes.len() {
        let header = bytes.get(at..at + 4).ok_or(WireError::Overrun { code: 0, len: 4, left: bytes.len() - at })?;
        let code = u16::from_be_bytes([header[0], header[1]]);
        let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
        let value =
            bytes.get(at + 4..at + 4 + len).ok_or(WireError::Overrun { code, len, left: bytes.len() - at - 4 })?;
        each(code, value)?;
        at += 4 + len;
    }
    Ok(())
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn address_at(bytes: &[u8], at: usize) -> Ipv6Addr {
    let mut octets = [0u8; 16];
    octets.copy_from_slice(&bytes[at..at + 16]);
    Ipv6Addr::from(octets)
}

fn status(code: u16, value: &[u8]) -> Result<Status, WireError> {
    if value.len() < 2 {
        return Err(WireError::BadLength { code, len: value.len() });
    }
    Ok(Status {
        code: u16::from_be_bytes([value[0], value[1]]),
        message: String::from_utf8_lossy(&value[2..]).chars().filter(|c| !c.is_control()).collect(),
    })
}

fn ia(code: u16, value: &[u8]) -> Result<Ia, WireError> {
    if value.len() < 12 {
        return Err(WireError::BadLength { code, len: value.len() });
    }
    let mut ia = Ia { iaid: u32_at(value, 0), t1: u32_at(value, 4), t2: u32_at(value, 8), ..Ia::default() };
    options(&value[12..], |code, value| {
        match code {
            5 => {
                if value.len() < 24 {
                    return Err(WireError::BadLength { code, len: value.len() });
                }
                ia.addresses.push(IaAddress {
                    address: address_at(value, 0),
                    preferred: u32_at(value, 16),
                    valid: u32_at(value, 20),
                });
                // Per-address status codes are rare; a failing one shows up in the lifetimes (0).
            }
            26 => {
                if value.len() < 25 {
                    return Err(WireError::BadLength { code, len: value.len() });
                }
                ia.prefixes.push(IaPrefix {
                    preferred: u32_at(value, 0),
                    valid: u32_at(value, 4),
                    length: value[8],
                    prefix: address_at(value, 9),
                });
            }
            13 => ia.status = Some(status(code, value)?),
            _ => {}
        }
        Ok(())
    })?;
    Ok(ia)
}

/// Parses a message from a server (no relay messages: the client talks to its link only).
pub(crate) fn parse(bytes: &[u8]) -> Result<ServerMessage, WireError> {
    if bytes.len() < 4 {
        return Err(WireError::Short(bytes.len()));
    }
    let mut message = ServerMessage {
        message_type: bytes[0],
        transaction_id: u32::from_be_bytes([0, bytes[1], bytes[2], bytes[3]]),
        ..ServerMessage::default()
    };
    options(&bytes[4..], |code, value| {
        match code {
            1 | 2 => {
                if value.len() < 2 || value.len() > 130 {
                    return Err(WireError::BadLength { code, len: value.len() });
                }
                let duid = Some(value.to_vec());
                if code == 1 { message.client_id = duid } else { message.server_id = duid }
            }
            3 => message.ia_na.push(ia(code, value)?),
            25 => message.ia_pd.push(ia(code, value)?),
            7 => {
                if value.len() != 1 {
                    return Err(WireError::BadLength { code, len: value.len() });
                }
                message.preference = value[0];
            }
            13 => message.status = Some(status(code, value)?),
            23 => {
                if value.len() % 16 != 0 {
                    return Err(WireError::BadLength { code, len: value.len() });
                }
                message.dns_servers.extend(value.chunks_exact(16).map(|c| address_at(c, 0)));
            }
            31 => {
                if value.len() % 16 != 0 {
                    return Err(WireError::BadLength { code, len: value.len() });
                }
                message.ntp_servers.extend(value.chunks_exact(16).map(|c| address_at(c, 0)));
            }
            // RFC 5908: suboption 1 is a server's unicast address; 2 (multicast) and 3 (a name) are not used.
            56 => options(value, |sub, server| {
                if sub == 1 {
                    if server.len() != 16 {
                        return Err(WireError::BadLength { code: 56, len: server.len() });
                    }
                    message.ntp_servers.push(address_at(server, 0));
                }
                Ok(())
            })?,
            // Server Unicast (12) is ignored: the client always uses the All_DHCP_Relay_Agents_and_Servers
            // multicast address, which RFC 8415 permits and which works before any global address exists.
            _ => {}
        }
        Ok(())
    })?;
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn option(code: u16, value: &[u8]) -> Vec<u8> {
        let mut bytes = code.to_be_bytes().to_vec();
        bytes.extend_from_slice(&(value.len() as u16).to_be_bytes());
        bytes.extend_from_slice(value);
        bytes
    }

    #[test]
    fn ntp_servers_come_from_option_56_addresses_and_option_31() {
        let server: Ipv6Addr = "2001:db8:0:1::123".parse().expect("literal");
        let sntp: Ipv6Addr = "2001:db8:0:1::124".parse().expect("literal");
        let mut ntp = option(1, &server.octets());
        ntp.extend(option(3, b"\x03ntp\x07example\x00"));
        let mut reply = vec![7, 0, 0, 1];
        reply.extend(option(56, &ntp));
        reply.extend(option(31, &sntp.octets()));
        assert_eq!(parse(&reply).expect("parses").ntp_servers, [server, sntp]);

        let mut bad = vec![7, 0, 0, 1];
        bad.extend(option(56, &option(1, &[0; 4])));
        assert_eq!(parse(&bad), Err(WireError::BadLength { code: 56, len: 4 }));
    }
}
