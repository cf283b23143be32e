//! The DHCPv4 server on every LAN with an IPv4 address: the protocol ([`server`]), the lease table and its
//! file ([`leases`]).

pub mod leases;
pub mod offers;
pub mod server;
pub mod service;

pub use leases::{Lease, LeaseRecord, LeaseTable, Mac, format_mac};
pub use server::{Handled, Ignored, PoolConfig, Reply, ReplyTo, Server};
