//! The DHCPv4 server on every LAN with an IPv4 address: the protocol ([`server`]), the lease table
//! ([`leases`]), its files ([`persist`]) and the copy other services read ([`published`]).

pub(crate) mod admin;
pub(crate) mod commands;
pub(crate) mod leases;
pub(crate) mod offers;
#[cfg(test)]
mod pair_tests;
pub(crate) mod persist;
pub(crate) mod pool_map;
pub(crate) mod published;
#[cfg(test)]
mod replay_tests;
pub(crate) mod server;
pub(crate) mod service;

pub(crate) use leases::{Lease, LeaseRecord, LeaseTable, Mac, format_mac};
pub(crate) use published::LeaseSnapshot;
pub(crate) use server::{PoolConfig, ReplyTo, Server};
