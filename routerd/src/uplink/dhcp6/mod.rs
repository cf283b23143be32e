//! DHCPv6 client for the uplink: the state machine ([`client`]), server messages ([`wire`]), leases
//! ([`lease`]), the DUID ([`duid`]).

pub mod client;
pub mod duid;
pub mod lease;
pub mod service;
pub mod store;
pub mod wire;

pub use client::{Client, ClientConfig, Event, Ignored, LeaseTimes, State, Transmit};
pub use lease::{DelegatedPrefix, Lease, LeaseError, LeasedAddress};
