//! A DHCPv4 lease: what an ACK says, checked before anything is applied, and its file in router7's format.

use std::{net::Ipv4Addr, time::Duration};

use dhcproto::v4::{DhcpOption, Message, OptionCode};
use serde::{Deserialize, Serialize};

/// A lease the router may apply. Built only through [`Lease::from_message`], which refuses anything unusable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    /// NTP servers (option 42).
    pub ntp: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    /// The server that acknowledged the lease (renewals go there).
    pub server_id: Option<Ipv4Addr>,
    pub lease_time: Duration,
    pub t1: Duration,
    pub t2: Duration,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    #[error("offered address {0} is not a usable host address")]
    BadAddress(Ipv4Addr),
    #[error("subnet mask {0} is not usable (not contiguous, or /0)")]
    BadMask(Ipv4Addr),
    #[error("offered address {0} is the network or broadcast address of its /{1}")]
    NotAHost(Ipv4Addr, u8),
    #[error("no lease time (option 51)")]
    NoLeaseTime,
    #[error("a lease time of 0 seconds")]
    ZeroLeaseTime,
}

impl Lease {
    /// The lease an OFFER or ACK describes. A missing subnet mask means a /32 (the gateway is reached through a
    /// host route); timers come from options 58/59 when they are consistent, else 50 % and 87.5 % of the lease.
    pub fn from_message(message: &Message) -> Result<Lease, LeaseError> {
        let address = message.yiaddr();
        if !is_usable_host(address) {
            return Err(LeaseError::BadAddress(address));
        }
        let prefix_len = match message.opts().get(OptionCode::SubnetMask) {
            Some(DhcpOption::SubnetMask(mask)) => prefix_len_of(*mask).ok_or(LeaseError::BadMask(*mask))?,
            _ => 32,
        };
        if prefix_len <= 30 {
            let host_bits = (1u32 << (32 - prefix_len)) - 1;
            let host = address.to_bits() & host_bits;
            if host == 0 || host == host_bits {
                return Err(LeaseError::NotAHost(address, prefix_len));
            }
        }
        let seconds = match message.opts().get(OptionCode::AddressLeaseTime) {
            Some(DhcpOption::AddressLeaseTime(seconds)) => *seconds,
            _ => return Err(LeaseError::NoLeaseTime),
        };
        if seconds == 0 {
            return Err(LeaseError::ZeroLeaseTime);
        }
        let lease_time = Duration::from_secs(u64::from(seconds));
        let option_secs = |code| match message.opts().get(code) {
            Some(DhcpOption::Renewal(s)) | Some(DhcpOption::Rebinding(s)) => Some(Duration::from_secs(u64::from(*s))),
            _ => None,
        };
        let (t1, t2) = match (option_secs(OptionCode::Renewal), option_secs(OptionCode::Rebinding)) {
            (Some(t1), Some(t2)) if !t1.is_zero() && t1 < t2 && t2 < lease_time => (t1, t2),
            (Some(t1), None) if !t1.is_zero() && t1 < lease_time.mul_f64(0.875) => (t1, lease_time.mul_f64(0.875)),
            _ => (lease_time / 2, lease_time.mul_f64(0.875)),
        };
        let gateway = match message.opts().get(OptionCode::Router) {
            Some(DhcpOption::Router(routers)) => routers.iter().copied().find(|r| is_usable_host(*r)),
            _ => None,
        };
        let dns = match message.opts().get(OptionCode::DomainNameServer) {
            Some(DhcpOption::DomainNameServer(servers)) => {
                servers.iter().copied().filter(|s| is_usable_host(*s)).collect()
            }
            _ => Vec::new(),
        };
        let ntp = match message.opts().get(OptionCode::NtpServers) {
            Some(DhcpOption::NtpServers(servers)) => servers.iter().copied().filter(|s| is_usable_host(*s)).collect(),
            _ => Vec::new(),
        };
        let domain = match message.opts().get(OptionCode::DomainName) {
            Some(DhcpOption::DomainName(name)) if !name.is_empty() && name.is_ascii() => Some(name.clone()),
            _ => None,
        };
        let server_id = match message.opts().get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(id)) if is_usable_host(*id) => Some(*id),
            _ => None,
        };
        Ok(Lease { address, prefix_len, gateway, dns, ntp, domain, server_id, lease_time, t1, t2 })
    }

    /// Whether applying `other` would configure the system differently (timers do not count).
    pub fn same_configuration(&self, other: &Lease) -> bool {
        (self.address, self.prefix_len, self.gateway, &self.dns)
            == (other.address, other.prefix_len, other.gateway, &other.dns)
    }

    /// What the lease configures on the uplink, as netconfig takes it.
    pub fn ipv4_config(&self) -> crate::netconfig::Ipv4Config {
        crate::netconfig::Ipv4Config { address: self.address, prefix_len: self.prefix_len, gateway: self.gateway }
    }

    pub fn subnet_mask(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(u32::MAX.checked_shl(32 - u32::from(self.prefix_len)).unwrap_or(0))
    }
}

/// Not 0.0.0.0, broadcast, multicast, loopback, link-local or class E.
pub(crate) fn is_usable_host(address: Ipv4Addr) -> bool {
    !(address.is_unspecified()
        || address.is_broadcast()
        || address.is_multicast()
        || address.is_loopback()
        || address.is_link_local()
        || address.octets()[0] >= 240)
}

/// The prefix length of a contiguous mask; `None` for a /0 or holes in the mask.
pub(crate) fn prefix_len_of(mask: Ipv4Addr) -> Option<u8> {
    let bits = mask.to_bits();
    let ones = bits.leading_ones();
    (ones > 0 && bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

/// `dhcp4/wire/lease.json`: router7's fields (`valid_until` is when renewal is due, as in router7), and
/// routerd's additions, which router7 ignores.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LeaseFile {
    pub valid_until: String,
    pub client_ip: String,
    pub subnet_mask: String,
    #[serde(default)]
    pub router: String,
    #[serde(default)]
    pub dns: Vec<String>,
    #[serde(flatten)]
    pub times: crate::uplink::lease_times::FileTimes,
    #[serde(default)]
    pub lease_seconds: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use dhcproto::v4::MessageType;

    fn ack(yiaddr: Ipv4Addr, options: Vec<DhcpOption>) -> Message {
        let mut message = Message::new_with_id(
            1,
            Ipv4Addr::UNSPECIFIED,
            yiaddr,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &[2, 0, 0, 0, 0, 1],
        );
        message.opts_mut().insert(DhcpOption::MessageType(MessageType::Ack));
        for option in options {
            message.opts_mut().insert(option);
        }
        message
    }

    fn good_options() -> Vec<DhcpOption> {
        vec![
            DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)),
            DhcpOption::AddressLeaseTime(600),
            DhcpOption::Router(vec![Ipv4Addr::new(198, 51, 100, 1)]),
            DhcpOption::DomainNameServer(vec![Ipv4Addr::new(198, 51, 100, 1), Ipv4Addr::UNSPECIFIED]),
            DhcpOption::ServerIdentifier(Ipv4Addr::new(198, 51, 100, 1)),
            DhcpOption::NtpServers(vec![Ipv4Addr::new(198, 51, 100, 123), Ipv4Addr::BROADCAST]),
        ]
    }

    #[test]
    fn a_good_ack_becomes_a_lease_with_default_timers() {
        let lease = Lease::from_message(&ack(Ipv4Addr::new(198, 51, 100, 150), good_options())).expect("valid");
        assert_eq!(lease.prefix_len, 24);
        assert_eq!(lease.subnet_mask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(lease.gateway, Some(Ipv4Addr::new(198, 51, 100, 1)));
        assert_eq!(lease.dns, vec![Ipv4Addr::new(198, 51, 100, 1)], "0.0.0.0 is dropped");
        assert_eq!(lease.ntp, vec![Ipv4Addr::new(198, 51, 100, 123)], "the broadcast address is dropped");
        assert_eq!((lease.t1, lease.t2), (Duration::from_secs(300), Duration::from_secs(525)));
    }

    #[test]
    fn timers_from_options_only_when_consistent() {
        let mut options = good_options();
        options.extend([DhcpOption::Renewal(15), DhcpOption::Rebinding(30)]);
        let lease = Lease::from_message(&ack(Ipv4Addr::new(198, 51, 100, 150), options)).expect("valid");
        assert_eq!((lease.t1, lease.t2), (Duration::from_secs(15), Duration::from_secs(30)));

        let mut inverted = good_options();
        inverted.extend([DhcpOption::Renewal(500), DhcpOption::Rebinding(100)]);
        let lease = Lease::from_message(&ack(Ipv4Addr::new(198, 51, 100, 150), inverted)).expect("valid");
        assert_eq!((lease.t1, lease.t2), (Duration::from_secs(300), Duration::from_secs(525)));
    }

    #[test]
    fn unusable_offers_are_refused() {
        let host = Ipv4Addr::new(198, 51, 100, 150);
        assert_eq!(
            Lease::from_message(&ack(Ipv4Addr::UNSPECIFIED, good_options())),
            Err(LeaseError::BadAddress(Ipv4Addr::UNSPECIFIED))
        );
        let mut zero_mask = good_options();
        zero_mask[0] = DhcpOption::SubnetMask(Ipv4Addr::UNSPECIFIED);
        assert_eq!(Lease::from_message(&ack(host, zero_mask)), Err(LeaseError::BadMask(Ipv4Addr::UNSPECIFIED)));
        let mut holes = good_options();
        holes[0] = DhcpOption::SubnetMask(Ipv4Addr::new(255, 0, 255, 0));
        assert!(matches!(Lease::from_message(&ack(host, holes)), Err(LeaseError::BadMask(_))));
        assert_eq!(
            Lease::from_message(&ack(Ipv4Addr::new(198, 51, 100, 255), good_options())),
            Err(LeaseError::NotAHost(Ipv4Addr::new(198, 51, 100, 255), 24))
        );
        let mut no_time = good_options();
        no_time.remove(1);
        assert_eq!(Lease::from_message(&ack(host, no_time)), Err(LeaseError::NoLeaseTime));
        let mut zero_time = good_options();
        zero_time[1] = DhcpOption::AddressLeaseTime(0);
        assert_eq!(Lease::from_message(&ack(host, zero_time)), Err(LeaseError::ZeroLeaseTime));
        for bad in
            [Ipv4Addr::BROADCAST, Ipv4Addr::new(224, 0, 0, 1), Ipv4Addr::LOCALHOST, Ipv4Addr::new(169, 254, 1, 1)]
        {
            assert!(Lease::from_message(&ack(bad, good_options())).is_err(), "{bad}");
        }
    }

    #[test]
    fn masks() {
        assert_eq!(prefix_len_of(Ipv4Addr::new(255, 255, 255, 128)), Some(25));
        assert_eq!(prefix_len_of(Ipv4Addr::BROADCAST), Some(32));
        assert_eq!(prefix_len_of(Ipv4Addr::UNSPECIFIED), None);
        assert_eq!(prefix_len_of(Ipv4Addr::new(255, 255, 0, 255)), None);
    }
}
