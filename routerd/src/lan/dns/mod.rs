//! DNS on every LAN: local names from the leases, everything else forwarded to the ISP's resolvers through a
//! cache, with DNS rebinding protection.

pub mod cache;
pub mod local;
pub mod policy;
pub mod service;
mod udp;
pub mod upstream;
