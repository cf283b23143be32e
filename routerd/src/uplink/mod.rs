//! The uplink (`uplink0`): the DHCPv4 and DHCPv6 clients that get the router online, and what they learned.

pub mod control;
pub mod dhcp4;
pub mod dhcp6;
pub mod driver;
#[cfg(test)]
mod driver_tests;
pub mod entropy;
pub mod ipv4_udp;
pub mod lease_times;
#[cfg(test)]
pub(crate) mod pcap;
pub mod protocol;
pub mod state;
