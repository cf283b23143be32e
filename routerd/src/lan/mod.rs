//! The LANs (`lan0`, `lan1`, …): the DHCPv4 server and the lease table the API and DNS read.

pub mod dhcp4d;
pub mod dns;
pub mod hostname;
pub mod radvd;
