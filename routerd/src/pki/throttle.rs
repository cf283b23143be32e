//! Failed pairing attempts, per source address: a few mistakes are free, then each further failure makes that
//! address wait longer (doubling, up to a few minutes), so a LAN host cannot try codes at speed. The table is
//! bounded: the oldest entries give way first.

use std::{
    collections::HashMap,
    net::IpAddr,
    time::{Duration, Instant},
};

/// Failures allowed before an address has to wait.
pub const FREE_FAILURES: u32 = 5;
/// The longest wait.
pub const MAX_WAIT: Duration = Duration::from_secs(300);
/// Addresses remembered at once.
const MAX_SOURCES: usize = 4096;

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct PairingThrottle {
    sources: HashMap<IpAddr, Failures>,
}

impl PairingThrottle {
    /// `Err(wait)` while `source` has to wait before it may try again.
    pub fn check(&self, source: IpAddr, now: Instant) -> Result<(), Duration> {
        match self.sources.get(&source).and_then(|f| f.blocked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Records a failed attempt from `source`.
    pub fn failed(&mut self, source: IpAddr, now: Instant) {
        // Forgotten after a quiet spell as long as the longest wait.
        self.sources.retain(|_, f| now.saturating_duration_since(f.last) < MAX_WAIT);
        if self.sources.len() >= MAX_SOURCES
            && !self.sources.contains_key(&source)
            && let Some(oldest) = self.sources.iter().min_by_key(|(_, f)| f.last).map(|(ip, _)| *ip)
        {
            self.sources.remove(&oldest);
        }
        let failures = self.sources.entry(source).or_insert(Failures { count: 0, last: now, blocked_until: None });
        failures.count += 1;
        failures.last = now;
        if failures.count > FREE_FAILURES {
            let doublings = (failures.count - FREE_FAILURES - 1).min(16);
            let wait = Duration::from_secs(1u64 << doublings).min(MAX_WAIT);
            failures.blocked_until = Some(now + wait);
        }
    }

    /// A successful pairing clears the address's record.
    pub fn succeeded(&mut self, source: IpAddr) {
        self.sources.remove(&source);
    }

    pub fn len(&self) -> usize {
        self.sources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_mistakes_are_free_then_the_wait_doubles_for_that_address_only() {
        let mut throttle = PairingThrottle::default();
        let (guesser, owner): (IpAddr, IpAddr) = ("192.0.2.66".parse().expect("ip"), "192.0.2.10".parse().expect("ip"));
        let start = Instant::now();
        for _ in 0..FREE_FAILURES {
            assert_eq!(throttle.check(guesser, start), Ok(()));
            throttle.failed(guesser, start);
        }
        assert_eq!(throttle.check(guesser, start), Ok(()));
        throttle.failed(guesser, start);
        assert_eq!(throttle.check(guesser, start), Err(Duration::from_secs(1)));
        assert_eq!(throttle.check(owner, start), Ok(()), "another address is not held up");
        let later = start + Duration::from_secs(1);
        assert_eq!(throttle.check(guesser, later), Ok(()));
        throttle.failed(guesser, later);
        assert_eq!(throttle.check(guesser, later), Err(Duration::from_secs(2)));
        for _ in 0..40 {
            throttle.failed(guesser, later);
        }
        assert_eq!(throttle.check(guesser, later), Err(MAX_WAIT));
        throttle.succeeded(guesser);
        assert_eq!(throttle.check(guesser, later), Ok(()));
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut throttle = PairingThrottle::default();
        let now = Instant::now();
        for n in 0..(MAX_SOURCES as u32 + 100) {
            throttle.failed(IpAddr::from(n.to_be_bytes()), now);
        }
        assert_eq!(throttle.len(), MAX_SOURCES);
    }
}
