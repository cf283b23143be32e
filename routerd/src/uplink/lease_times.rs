//! Timers shared by the DHCPv4 and DHCPv6 clients: when a lease was bound and when it is renewed, rebound and
//! lost, on the monotonic clock (which NTP cannot move), and helpers to show them on the wall clock.

use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LeaseTimes {
    pub bound_at: Instant,
    pub renew_at: Instant,
    pub rebind_at: Instant,
    pub expires_at: Instant,
}

impl LeaseTimes {
    /// A lease restored from disk after a restart: its age is unknown, so it counts as due at once.
    pub(crate) fn due(now: Instant) -> LeaseTimes {
        LeaseTimes { bound_at: now, renew_at: now, rebind_at: now, expires_at: now }
    }
}

/// What routerd adds to router7's lease files (router7 ignores unknown fields): which server, and when.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileTimes {
    #[serde(default)]
    pub server_id: String,
    #[serde(default)]
    pub bound_at: String,
    #[serde(default)]
    pub rebind_at: String,
    #[serde(default)]
    pub expires_at: String,
}

impl FileTimes {
    pub(crate) fn new(server_id: String, times: LeaseTimes) -> FileTimes {
        FileTimes {
            server_id,
            bound_at: rfc3339(wall_clock(times.bound_at)),
            rebind_at: rfc3339(wall_clock(times.rebind_at)),
            expires_at: rfc3339(wall_clock(times.expires_at)),
        }
    }
}

/// The wall-clock time of a monotonic instant.
pub(crate) fn wall_clock(instant: Instant) -> SystemTime {
    let now = Instant::now();
    let system_now = SystemTime::now();
    if instant >= now { system_now + (instant - now) } else { system_now - (now - instant) }
}

/// RFC 3339, as router7's Go code writes times into its lease files.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    OffsetDateTime::from(time).format(&Rfc3339).unwrap_or_default()
}
