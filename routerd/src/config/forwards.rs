//! Port forwards from `portforwardings.json` (router7's schema), checked into values the ruleset can use.
//!
//! Ports are decimal: router7 parses them with Go's base-0 ParseUint, so `"0080"` there means port 64 (octal);
//! here it means 80, as anyone reading the file expects.

use std::{net::Ipv4Addr, ops::RangeInclusive};

use crate::config::PortForwarding;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocols {
    Tcp,
    Udp,
    Both,
}

impl Protocols {
    pub fn names(self) -> &'static [&'static str] {
        match self {
            Protocols::Tcp => &["tcp"],
            Protocols::Udp => &["udp"],
            Protocols::Both => &["tcp", "udp"],
        }
    }
}

/// One checked forward: traffic to `ports` of the router goes to `dest_addr`, port for port into `dest_ports`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forward {
    pub protocols: Protocols,
    pub ports: RangeInclusive<u16>,
    pub dest_addr: Ipv4Addr,
    pub dest_ports: RangeInclusive<u16>,
}

/// What is wrong with a forward, by field, so a user (or rtrctl) can say exactly what to fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    #[error("proto {0:?}: use \"tcp\", \"udp\" or \"tcp,udp\"")]
    Proto(String),
    #[error("{field} {value:?}: {reason}")]
    Port { field: &'static str, value: String, reason: String },
    #[error("dest_addr {0:?} is not an IPv4 address")]
    DestAddr(String),
    #[error("port range {ports} and dest_port range {dest_ports} have different lengths")]
    RangeLengths { ports: String, dest_ports: String },
}

pub fn parse_protocols(text: &str) -> Result<Protocols, ForwardError> {
    let mut tcp = false;
    let mut udp = false;
    for part in text.split(',').map(|p| p.trim().to_ascii_lowercase()) {
        match part.as_str() {
            "tcp" => tcp = true,
            "udp" => udp = true,
            _ => return Err(ForwardError::Proto(text.to_string())),
        }
    }
    match (tcp, udp) {
        (true, true) => Ok(Protocols::Both),
        (true, false) => Ok(Protocols::Tcp),
        (false, true) => Ok(Protocols::Udp),
        (false, false) => Err(ForwardError::Proto(text.to_string())),
    }
}

fn parse_port(field: &'static str, text: &str) -> Result<u16, ForwardError> {
    let error = |reason: &str| ForwardError::Port { field, value: text.to_string(), reason: reason.to_string() };
    let digits = text.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(error("not a decimal port number"));
    }
    match digits.parse::<u32>() {
        Ok(port @ 1..=65535) => Ok(port as u16),
        _ => Err(error("ports are 1 to 65535")),
    }
}

/// `"8080"` or `"8040-8060"`.
pub fn parse_ports(field: &'static str, text: &str) -> Result<RangeInclusive<u16>, ForwardError> {
    match text.split_once('-') {
        Some((first, last)) => {
            let (first, last) = (parse_port(field, first)?, parse_port(field, last)?);
            if first > last {
                return Err(ForwardError::Port {
                    field,
                    value: text.to_string(),
                    reason: "the range starts after it ends".into(),
                });
            }
            Ok(first..=last)
        }
        None => parse_port(field, text).map(|port| port..=port),
    }
}

impl Forward {
    /// Checks one entry of portforwardings.json. An empty `dest_port` means the same port(s) as `port`.
    pub fn parse(entry: &PortForwarding) -> Result<Forward, ForwardError> {
        let protocols = parse_protocols(&entry.proto)?;
        let ports = parse_ports("port", &entry.port)?;
        let dest_addr =
            entry.dest_addr.trim().parse::<Ipv4Addr>().map_err(|_| ForwardError::DestAddr(entry.dest_addr.clone()))?;
        let dest_ports =
            if entry.dest_port.trim().is_empty() { ports.clone() } else { parse_ports("dest_port", &entry.dest_port)? };
        if ports.end() - ports.start() != dest_ports.end() - dest_ports.start() {
            return Err(ForwardError::RangeLengths { ports: entry.port.clone(), dest_ports: entry.dest_port.clone() });
        }
        Ok(Forward { protocols, ports, dest_addr, dest_ports })
    }
}

/// Every entry checked: the usable forwards, and a message per entry that is not (named by its index).
pub fn parse_all(entries: &[PortForwarding]) -> (Vec<Forward>, Vec<String>) {
    let mut forwards = Vec::new();
    let mut problems = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        match Forward::parse(entry) {
            Ok(forward) => forwards.push(forward),
            Err(error) => problems.push(format!("forwardings[{index}]: {error}")),
        }
    }
    (forwards, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(proto: &str, port: &str, dest_addr: &str, dest_port: &str) -> PortForwarding {
        PortForwarding {
            proto: proto.into(),
            port: port.into(),
            dest_addr: dest_addr.into(),
            dest_port: dest_port.into(),
            ..Default::default()
        }
    }

    #[test]
    fn router7s_examples() {
        // From router7's documentation: a single port, and a range mapped onto an equal range.
        let single = Forward::parse(&entry("tcp", "8080", "192.0.2.23", "9114")).expect("valid");
        assert_eq!((single.protocols, single.ports, single.dest_ports), (Protocols::Tcp, 8080..=8080, 9114..=9114));
        let range = Forward::parse(&entry("tcp,udp", "8040-8060", "192.0.2.23", "9040-9060")).expect("valid");
        assert_eq!(range.protocols, Protocols::Both);
        assert_eq!(range.dest_ports, 9040..=9060);
        let same = Forward::parse(&entry("udp", "51820", "192.0.2.5", "")).expect("valid");
        assert_eq!(same.dest_ports, 51820..=51820, "no dest_port: the same port");
    }

    #[test]
    fn leading_zeros_are_decimal_not_octal() {
        // router7 (Go base 0) reads "0080" as octal 64 and "0089" as an error.
        let forward = Forward::parse(&entry("tcp", "0080", "192.0.2.23", "0089")).expect("valid");
        assert_eq!((forward.ports, forward.dest_ports), (80..=80, 89..=89));
    }

    #[test]
    fn bad_entries_name_the_field() {
        let cases = [
            (entry("icmp", "80", "192.0.2.2", "80"), "proto"),
            (entry("", "80", "192.0.2.2", "80"), "proto"),
            (entry("tcp", "0", "192.0.2.2", "80"), "ports are 1 to 65535"),
            (entry("tcp", "65536", "192.0.2.2", "80"), "ports are 1 to 65535"),
            (entry("tcp", "0x50", "192.0.2.2", "80"), "not a decimal port"),
            (entry("tcp", "-80", "192.0.2.2", "80"), "not a decimal port"),
            (entry("tcp", "90-80", "192.0.2.2", "80"), "starts after it ends"),
            (entry("tcp", "80", "192.0.2", "80"), "dest_addr"),
            (entry("tcp", "80", "2001:db8::1", "80"), "dest_addr"),
            (entry("tcp", "8040-8060", "192.0.2.2", "9040-9041"), "different lengths"),
            (entry("tcp", "80", "192.0.2.2", "99999"), "dest_port"),
        ];
        for (entry, expected) in cases {
            let error = Forward::parse(&entry).expect_err("invalid").to_string();
            assert!(error.contains(expected), "{entry:?}: {error}");
        }
        let (good, problems) =
            parse_all(&[entry("tcp", "80", "192.0.2.2", "80"), entry("tcp", "x", "192.0.2.2", "80")]);
        assert_eq!(good.len(), 1);
        assert_eq!(problems, vec!["forwardings[1]: port \"x\": not a decimal port number".to_string()]);
    }
}
