//! The DHCPv4 server on every LAN with an IPv4 address: the protocol ([`server`]), the lease table
//! ([`leases`]), its files ([`persist`]) and the copy other services read ([`published`]).

pub mod commands;
pub mod leases;
pub mod offers;
#[cfg(test)]
mod pair_tests;
pub mod persist;
pub mod pool_map;
pub mod published;
#[cfg(test)]
mod replay_tests;
pub mod server;
pub mod service;

pub use leases::{Lease, LeaseRecord, LeaseTable, Mac, format_mac};
pub use published::LeaseSnapshot;
pub use server::{Handled, Ignored, PoolConfig, Reply, ReplyTo, Server};
