//! Bounds on what connecting clients can make routerd hold: connections in all and from one address, and an
//! accept loop that backs off when the process runs out of descriptors instead of spinning.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::net::{TcpListener, TcpStream};

/// At most `total` at once, and `per_source` from one address.
#[derive(Debug)]
pub struct ConnectionLimit {
    total: usize,
    per_source: usize,
    counts: Mutex<Counts>,
}

/// Slots in use per source, and their sum (kept, so taking a slot costs O(1), not a walk over every source).
#[derive(Debug, Default)]
struct Counts {
    by_source: HashMap<IpAddr, usize>,
    in_use: usize,
}

impl ConnectionLimit {
    pub fn new(total: usize, per_source: usize) -> Arc<ConnectionLimit> {
        Arc::new(ConnectionLimit { total, per_source, counts: Mutex::default() })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A slot for one more from `source`, or `None` at either bound; the slot is free again when dropped. An
    /// IPv4 device counts as itself whether it came through an IPv4 socket or a dual-stack one (`::ffff:a.b.c.d`).
    pub fn try_acquire(self: &Arc<Self>, source: IpAddr) -> Option<Slot> {
        let source = source.to_canonical();
        let mut counts = self.counts();
        if counts.in_use >= self.total {
            return None;
        }
        let from_source = counts.by_source.entry(source).or_insert(0);
        if *from_source >= self.per_source {
            return None;
        }
        *from_source += 1;
        counts.in_use += 1;
        Some(Slot { limit: self.clone(), source })
    }

    pub fn in_use(&self) -> usize {
        self.counts().in_use
    }
}

/// One connection's share of a [`ConnectionLimit`].
#[derive(Debug)]
pub struct Slot {
    limit: Arc<ConnectionLimit>,
    source: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.limit.counts();
        let Counts { by_source, in_use } = &mut *counts;
        if let Some(count) = by_source.get_mut(&self.source) {
            *count -= 1;
            *in_use -= 1;
            if *count == 0 {
                by_source.remove(&self.source);
            }
        }
    }
}

/// A token bucket per source address: `rate` a second, bursts of `burst`. Checked before any other work, so
/// what a flooding device costs beyond its budget is one table lookup per packet. The table is bounded: when
/// it is full, the addresses whose buckets are full again are forgotten.
#[derive(Debug)]
pub struct RateLimit {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, std::time::Instant)>>,
}

/// Sources a [`RateLimit`] remembers at once.
const MAX_RATE_SOURCES: usize = 4096;

impl RateLimit {
    pub fn new(rate: u32, burst: u32) -> RateLimit {
        RateLimit { rate: f64::from(rate), burst: f64::from(burst), buckets: Mutex::new(HashMap::new()) }
    }

    /// Whether `source` may have one more at `now` (and takes it); an IPv4-mapped address counts as the IPv4 one.
    pub fn allow(&self, source: IpAddr, now: std::time::Instant) -> bool {
        let source = source.to_canonical();
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() >= MAX_RATE_SOURCES && !buckets.contains_key(&source) {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, (tokens, at)| *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate < burst);
            // Still full (many sources at once, perhaps spoofed): an eighth goes, whichever, so a new device is
            // never refused for lack of room and the walk above is paid once per eighth, not once per packet.
            if buckets.len() >= MAX_RATE_SOURCES {
                let evicted: Vec<IpAddr> = buckets.keys().take(MAX_RATE_SOURCES / 8).copied().collect();
                for key in evicted {
                    buckets.remove(&key);
                }
            }
        }
        let (tokens, at) = buckets.entry(source).or_insert((self.burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The next connection on `listener`. Errors (a peer that reset before accept, or EMFILE when the descriptors
/// run out) never end the loop; repeated ones make it wait longer (up to a second), so it does not spin.
pub async fn accept(listener: &TcpListener, what: &str) -> (TcpStream, SocketAddr) {
    with_backoff(what, || listener.accept()).await
}

/// Calls `attempt` until it succeeds, waiting after each failure: 20 ms after the first, twice as long after
/// each next one, at most 1.28 s. A warning is logged at the 1st, 2nd, 4th, 8th… failure in a row.
pub async fn with_backoff<T, F, Fut>(what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::io::Result<T>>,
{
    let mut failures = 0u32;
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(error) => {
                failures = failures.saturating_add(1);
                if failures.is_power_of_two() {
                    tracing::warn!("{what}: accepting a connection: {error} ({failures} in a row)");
                }
                tokio::time::sleep(Duration::from_millis(10u64 << failures.min(7))).await;
            }
        }
    }
}

/// Raises the open-file limit to the hard limit: every LAN client's connection is a descriptor, and the default
/// soft limit (1024) is a denial of service waiting for a busy LAN.
pub fn raise_open_files() {
    if let Some((old, new)) = crate::sys::process::raise_open_files() {
        tracing::info!("open files: raised the limit from {old} to {new}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_gets_its_burst_then_its_rate_and_others_are_not_affected() {
        let limit = RateLimit::new(100, 10);
        let (flooder, other): (IpAddr, IpAddr) = ("192.0.2.66".parse().expect("ip"), "192.0.2.10".parse().expect("ip"));
        let t0 = std::time::Instant::now();
        assert_eq!((0..50).filter(|_| limit.allow(flooder, t0)).count(), 10, "the burst");
        assert!(limit.allow(other, t0), "another source has its own bucket");
        let later = t0 + Duration::from_millis(100);
        assert_eq!((0..50).filter(|_| limit.allow(flooder, later)).count(), 10, "100 a second");
    }

    #[test]
    fn a_full_table_of_sources_never_refuses_a_new_one() {
        let limit = RateLimit::new(1, 1000);
        let t0 = std::time::Instant::now();
        for n in 0..(MAX_RATE_SOURCES as u32 * 4) {
            assert!(limit.allow(IpAddr::from(n.to_be_bytes()), t0), "source {n}");
        }
        let table = limit.buckets.lock().expect("lock").len();
        assert!(table <= MAX_RATE_SOURCES, "{table}");
    }

    #[test]
    fn slots_are_capped_per_source_and_in_all_and_come_back() {
        let limit = ConnectionLimit::new(10, 4);
        let one: IpAddr = "192.0.2.10".parse().expect("literal");
        let slots: Vec<Slot> = (0..4).filter_map(|_| limit.try_acquire(one)).collect();
        assert_eq!(slots.len(), 4);
        assert!(limit.try_acquire(one).is_none(), "one host cannot take more");
        let others: Vec<Slot> =
            (0..=255u8).filter_map(|host| limit.try_acquire(IpAddr::from([198, 51, 100, host]))).collect();
        assert_eq!(slots.len() + others.len(), 10);
        assert_eq!(limit.in_use(), 10);
        drop(slots);
        assert!(limit.try_acquire(one).is_some(), "slots come back when connections end");
    }

    #[test]
    fn an_ipv4_device_is_one_source_through_ipv4_and_dual_stack_sockets() {
        let plain: IpAddr = "192.0.2.10".parse().expect("literal");
        let mapped: IpAddr = "::ffff:192.0.2.10".parse().expect("literal");
        let limit = ConnectionLimit::new(10, 2);
        let slots = [limit.try_acquire(plain), limit.try_acquire(mapped)];
        assert!(slots.iter().all(Option::is_some));
        assert!(limit.try_acquire(mapped).is_none() && limit.try_acquire(plain).is_none(), "one device, one share");
        let rate = RateLimit::new(1, 2);
        let t0 = std::time::Instant::now();
        assert!(rate.allow(plain, t0) && rate.allow(mapped, t0));
        assert!(!rate.allow(mapped, t0) && !rate.allow(plain, t0), "one device, one bucket");
    }
}
