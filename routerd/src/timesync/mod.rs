//! The wall clock: SNTP from the ISP's NTP servers (DHCPv4 option 42, DHCPv6 options 56 and 31) or those in
//! routerd.json, the hardware clock, and a floor kept in /perm so that a router whose clock battery is flat does
//! not start in the past. Lease timers never depend on the wall clock ([`crate::clock`]); certificates do.

pub mod floor;
pub mod service;
pub mod sntp;

use std::{net::IpAddr, time::SystemTime};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockState {
    /// Neither the ISP nor routerd.json names an NTP server.
    NoServers,
    /// Servers are known; none has answered yet (or the last answers were refused).
    Unsynchronized,
    Synchronized,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ClockStatus {
    pub state: ClockState,
    /// Whether routerd sets the system and hardware clocks (on the appliance) or only measures (elsewhere, where
    /// the host has its own time service).
    pub sets_system_clock: bool,
    pub servers: Vec<IpAddr>,
    /// The server of the last good answer.
    pub server: Option<IpAddr>,
    /// How far the clock was off at the last good answer (before it was corrected).
    pub offset_seconds: f64,
    pub synchronized_at: Option<SystemTime>,
    pub last_error: Option<String>,
}

impl ClockStatus {
    pub fn initial(sets_system_clock: bool) -> ClockStatus {
        ClockStatus {
            state: ClockState::NoServers,
            sets_system_clock,
            servers: Vec::new(),
            server: None,
            offset_seconds: 0.0,
            synchronized_at: None,
            last_error: None,
        }
    }
}

/// routerd sets the machine's clock only under the appliance's init: on any other Linux box the host keeps time.
pub fn owns_the_clock() -> bool {
    std::env::var_os("ROUTERD_INIT").is_some()
}
