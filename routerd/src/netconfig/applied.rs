//! What netconfig has put into the kernel, published on a watch channel for the services that depend on it
//! (radvd advertises the LANs' /64s, DNS answers with the router's addresses and protects the house's own
//! networks from rebinding), so none of them works it out again or reads it back from the kernel.

use std::net::Ipv6Addr;

use super::{Ipv4Config, Prefix};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Applied {
    /// The uplink's IPv4 configuration from the DHCPv4 lease.
    pub uplink_ipv4: Option<Ipv4Config>,
    /// The uplink's IPv6 address from the DHCPv6 lease (IA_NA).
    pub uplink_ipv6: Option<Ipv6Addr>,
    /// The delegated prefix the LANs' /64s were taken from.
    pub delegated: Option<Prefix>,
    /// Each LAN's /64 of the delegated prefix.
    pub lan_prefixes: Vec<LanPrefix>,
}

/// One LAN's /64 and the router's address in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LanPrefix {
    pub lan: String,
    pub subnet: Ipv6Addr,
    pub router: Ipv6Addr,
}
