//! What the uplink has learned, published on a watch channel: the API and (later) the LAN services read it.

use std::time::SystemTime;

use super::{dhcp4, dhcp6};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UplinkSnapshot {
    pub dhcp4: Option<Dhcp4Status>,
    pub dhcp6: Option<Dhcp6Status>,
    /// Why the LANs get no IPv6 (the ISP delegated no prefix, refused, …); `None` while IPv6 works or is pending.
    pub ipv6_unavailable: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dhcp6Status {
    pub state: String,
    pub lease: dhcp6::Lease,
    pub bound_at: Option<SystemTime>,
    pub renew_at: Option<SystemTime>,
    pub rebind_at: Option<SystemTime>,
    pub expires_at: Option<SystemTime>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dhcp4Status {
    /// The client's state ("bound", "renewing", …, or "restored" before any server answered).
    pub state: String,
    pub lease: dhcp4::Lease,
    pub bound_at: Option<SystemTime>,
    pub renew_at: Option<SystemTime>,
    pub rebind_at: Option<SystemTime>,
    pub expires_at: Option<SystemTime>,
}
