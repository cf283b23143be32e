//! DHCPv4 client for the uplink: the state machine ([`client`]), leases ([`lease`]) and the service that runs
//! it on a packet socket and applies what it learns ([`service`]).

pub(crate) mod client;
pub(crate) mod lease;
pub(crate) mod service;
pub(crate) mod store;

pub(crate) use client::{Client, ClientConfig, Destination, LeaseTimes, Transmit, parse_ack};
pub(crate) use lease::{Lease, LeaseFile};
