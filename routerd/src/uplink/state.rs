//! What the uplink has learned, published on a watch channel: the API, the metrics, diagnostics and the LAN
//! services read it.

use std::time::SystemTime;

use super::{dhcp4, dhcp6, protocol::Phase};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UplinkSnapshot {
    pub dhcp4: Option<Dhcp4Status>,
    pub dhcp6: Option<Dhcp6Status>,
    /// Why the LANs get no IPv6 (the ISP delegated no prefix, refused, …); `None` while IPv6 works or is pending.
    pub ipv6_unavailable: Option<String>,
}

/// One client's lease and where the client stands with it. The times are unknown (`None`) for a lease restored
/// from disk: they belong to before the restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseStatus<Lease> {
    pub phase: Phase,
    pub lease: Lease,
    pub bound_at: Option<SystemTime>,
    pub renew_at: Option<SystemTime>,
    pub rebind_at: Option<SystemTime>,
    pub expires_at: Option<SystemTime>,
}

pub(crate) type Dhcp4Status = LeaseStatus<dhcp4::Lease>;
pub(crate) type Dhcp6Status = LeaseStatus<dhcp6::Lease>;
