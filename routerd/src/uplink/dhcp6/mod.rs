//! DHCPv6 client for the uplink: the state machine ([`client`]), server messages ([`wire`]), leases
//! ([`lease`]), the DUID ([`duid`]).

pub(crate) mod client;
pub(crate) mod duid;
pub(crate) mod lease;
pub(crate) mod service;
pub(crate) mod store;
pub(crate) mod wire;

pub(crate) use client::{Client, ClientConfig, Event, LeaseTimes, Transmit};
pub(crate) use lease::{DelegatedPrefix, Lease, LeasedAddress};
