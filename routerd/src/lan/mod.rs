//! The LANs (`lan0`, `lan1`, …): the DHCPv4 server and the lease table the API and DNS read.

pub(crate) mod dhcp4d;
pub(crate) mod dns;
pub(crate) mod hostname;
pub(crate) mod radvd;
