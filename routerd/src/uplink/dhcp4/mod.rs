//! DHCPv4 client for the uplink: the state machine ([`client`]), leases ([`lease`]) and the service that runs
//! it on a packet socket and applies what it learns ([`service`]).

pub mod client;
pub mod lease;
pub mod service;
pub mod store;

pub use client::{Client, ClientConfig, Destination, Event, Ignored, LeaseTimes, State, Transmit, parse_ack};
pub use lease::{Lease, LeaseError, LeaseFile};
