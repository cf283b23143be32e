//! What the uplink's two I/O-free clients (DHCPv4 and DHCPv6) have in common, so one driver
//! ([`super::driver`]) runs either: their events, the phase they are in, and the [`Protocol`] trait.

use std::time::Instant;

use super::lease_times::LeaseTimes;

/// What a client asks its driver to do, or tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Event<Transmit, Lease> {
    Send(Transmit),
    /// A lease was obtained or renewed (compare with the previous one to see whether anything changed).
    Bound(Lease),
    /// A server refused or could not help (DHCPNAK, NoPrefixAvail, …); the client keeps asking, and the
    /// configuration in place stays.
    Refused(String),
    /// The lease ran out without an answer; its configuration is kept while the client keeps asking.
    Expired,
}

/// Where a client stands, as the API (`UplinkClientState`), the metrics (`state` label) and diagnostics show
/// it. The labels are stable: scripts and dashboards match them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// A lease saved before a restart, applied before any server answered.
    Restored,
    Init,
    /// DHCPv4 DISCOVER.
    Selecting,
    /// DHCPv6 Solicit.
    Soliciting,
    Requesting,
    InitReboot,
    Rebooting,
    Bound,
    Renewing,
    Rebinding,
    /// The lease ran out without an answer; its configuration is kept while the client keeps asking.
    Expired,
    Released,
}

impl Phase {
    pub const ALL: [Phase; 12] = [
        Phase::Restored,
        Phase::Init,
        Phase::Selecting,
        Phase::Soliciting,
        Phase::Requesting,
        Phase::InitReboot,
        Phase::Rebooting,
        Phase::Bound,
        Phase::Renewing,
        Phase::Rebinding,
        Phase::Expired,
        Phase::Released,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Phase::Restored => "restored",
            Phase::Init => "init",
            Phase::Selecting => "selecting",
            Phase::Soliciting => "soliciting",
            Phase::Requesting => "requesting",
            Phase::InitReboot => "init-reboot",
            Phase::Rebooting => "rebooting",
            Phase::Bound => "bound",
            Phase::Renewing => "renewing",
            Phase::Rebinding => "rebinding",
            Phase::Expired => "expired-but-kept",
            Phase::Released => "released",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// A client's events for its own transmit and lease types.
pub(crate) type Events<P> = Vec<Event<<P as Protocol>::Transmit, <P as Protocol>::Lease>>;

/// An I/O-free DHCP client as its driver sees it: fed packets and timeouts, it answers with events.
pub(crate) trait Protocol: Send {
    type Transmit: Send;
    type Lease: Clone + Send + Sync;
    type Ignored: std::fmt::Display;

    fn phase(&self) -> Phase;
    fn lease(&self) -> Option<(&Self::Lease, LeaseTimes)>;
    fn next_wakeup(&self) -> Instant;
    fn handle_timeout(&mut self, now: Instant) -> Events<Self>;
    fn handle_packet(&mut self, now: Instant, payload: &[u8]) -> Result<Events<Self>, Self::Ignored>;
    /// Gives the lease back (the release is among the events) and stays quiet until [`Protocol::restart`].
    fn release(&mut self, now: Instant) -> Events<Self>;
    /// Starts over from the beginning, now.
    fn restart(&mut self, now: Instant);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phase_has_its_own_label() {
        let labels: std::collections::HashSet<&str> = Phase::ALL.iter().map(|p| p.label()).collect();
        assert_eq!(labels.len(), Phase::ALL.len());
        assert!(labels.iter().all(|l| l.chars().all(|c| c.is_ascii_lowercase() || c == '-')), "{labels:?}");
    }
}
