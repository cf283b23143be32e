//! The uplink (`uplink0`): the DHCPv4 and DHCPv6 clients that get the router online, and what they learned.

pub(crate) mod control;
pub(crate) mod dhcp4;
pub(crate) mod dhcp6;
pub(crate) mod driver;
#[cfg(test)]
mod driver_tests;
pub(crate) mod entropy;
pub(crate) mod ipv4_udp;
pub(crate) mod lease_times;
#[cfg(test)]
pub(crate) mod pcap;
pub(crate) mod protocol;
pub(crate) mod state;
