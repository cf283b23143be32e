//! The time lease timers run on: the wall clock read once when routerd starts, advanced from then on by the
//! monotonic clock. A router may boot with a wrong clock (the apu2 has no battery) and NTP steps it later; a
//! step must not expire every lease of the LANs at once, nor keep them forever. Lease files keep router7's
//! wall-clock times, so after a restart the anchor is read afresh.

use std::{
    sync::OnceLock,
    time::{Instant, SystemTime},
};

/// A wall-clock reading and the monotonic instant it was taken at.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SteadyClock {
    wall: SystemTime,
    mono: Instant,
}

impl SteadyClock {
    pub(crate) fn anchored(wall: SystemTime, mono: Instant) -> SteadyClock {
        SteadyClock { wall, mono }
    }

    /// The time at `instant`: the anchor plus how far the monotonic clock moved.
    pub(crate) fn at(&self, instant: Instant) -> SystemTime {
        if instant >= self.mono { self.wall + (instant - self.mono) } else { self.wall - (self.mono - instant) }
    }
}

/// The monotonic time on tokio's clock, as the I/O-free cores count it: the real time, and in tests with tokio's
/// clock paused, the paused time, so a driver can run a core on a virtual clock.
pub(crate) fn instant() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// routerd's clock for lease timers, anchored the first time it is read (at start).
pub(crate) fn now() -> SystemTime {
    static ANCHOR: OnceLock<SteadyClock> = OnceLock::new();
    ANCHOR.get_or_init(|| SteadyClock::anchored(SystemTime::now(), Instant::now())).at(Instant::now())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn time_moves_with_the_monotonic_clock_only() {
        // Anchored while the wall clock said 1970 (before NTP).
        let start = Instant::now();
        let clock = SteadyClock::anchored(SystemTime::UNIX_EPOCH, start);
        let later = start + Duration::from_secs(3600);
        assert_eq!(clock.at(later), SystemTime::UNIX_EPOCH + Duration::from_secs(3600));
        // Whatever the system clock does meanwhile, an hour is an hour: a lease of two hours has one left.
        let lease_expiry = clock.at(start) + Duration::from_secs(7200);
        assert!(clock.at(later) < lease_expiry);
        assert!(now() <= now(), "never goes back");
    }
}
