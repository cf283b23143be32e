//! DNS on every LAN: local names from the leases, everything else forwarded to the ISP's resolvers through a
//! cache, with DNS rebinding protection.

pub(crate) mod cache;
pub(crate) mod local;
pub(crate) mod policy;
pub(crate) mod service;
mod udp;
pub(crate) mod upstream;
