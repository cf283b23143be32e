//! The counters services keep for the metrics: each service gets the ones it owns through [`Metrics`] (handed
//! to it at start, never global), and the scrape (`metrics::collect`) reads them. They depend on nothing else of
//! routerd, so every service can count without knowing about the exposition.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    pub(crate) fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A latency histogram with fixed buckets (seconds), as Prometheus expects: cumulative at exposition time.
#[derive(Debug)]
pub(crate) struct Histogram {
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative); the last one is +Inf.
    buckets: Vec<AtomicU64>,
    sum_micros: AtomicU64,
}

/// Bucket bounds in seconds for DNS upstream round trips: a LAN-side cache miss costs one of these.
pub(crate) const LATENCY_BOUNDS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

impl Histogram {
    pub(crate) fn new(bounds: &'static [f64]) -> Histogram {
        Histogram { bounds, buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(), sum_micros: 0.into() }
    }

    pub(crate) fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let index = self.bounds.iter().position(|bound| seconds <= *bound).unwrap_or(self.bounds.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// (upper bound, cumulative count) per bucket without +Inf, the total count and the sum in seconds.
    pub(crate) fn snapshot(&self) -> (Vec<(f64, u64)>, u64, f64) {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(self.bounds.len());
        for (bound, count) in self.bounds.iter().zip(&self.buckets) {
            cumulative += count.load(Ordering::Relaxed);
            buckets.push((*bound, cumulative));
        }
        cumulative += self.buckets[self.bounds.len()].load(Ordering::Relaxed);
        (buckets, cumulative, self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6)
    }
}

/// What the DNS service counts: every query by how it was answered.
#[derive(Debug)]
pub(crate) struct DnsMetrics {
    /// Answered from local data (leases, the router's name, reverse zones of the LANs).
    pub local: Counter,
    pub cache_hit: Counter,
    /// Answered by an upstream server.
    pub upstream: Counter,
    /// Upstream answers with private addresses that rebinding protection removed.
    pub rebinding_blocked: Counter,
    /// SERVFAIL: no upstream answered.
    pub failed: Counter,
    /// Answered with another client's upstream answer to the same question, asked once.
    pub joined: Counter,
    /// Dropped: the client had too many queries waiting for an upstream already.
    pub dropped: Counter,
    pub upstream_latency: Histogram,
}

impl Default for DnsMetrics {
    fn default() -> Self {
        DnsMetrics {
            local: Counter::default(),
            cache_hit: Counter::default(),
            upstream: Counter::default(),
            rebinding_blocked: Counter::default(),
            failed: Counter::default(),
            joined: Counter::default(),
            dropped: Counter::default(),
            upstream_latency: Histogram::new(LATENCY_BOUNDS),
        }
    }
}

/// DHCPv4 message types by their option 53 value (RFC 2132 §9.6), the index into the per-type counters.
pub(crate) const DHCP4_MESSAGE_TYPES: [&str; 8] =
    ["discover", "offer", "request", "decline", "ack", "nak", "release", "inform"];

/// What the DHCPv4 server counts: messages received and sent by type.
#[derive(Debug, Default)]
pub(crate) struct Dhcp4ServerMetrics {
    received: [Counter; 8],
    sent: [Counter; 8],
    /// Malformed or otherwise ignored requests.
    pub ignored: Counter,
    /// Offers made and not yet requested, on all LANs (a gauge, set after every batch).
    pub offers_outstanding: AtomicU64,
}

impl Dhcp4ServerMetrics {
    /// Counts a received message by its option 53 value (1 = DISCOVER … 8 = INFORM); others are not counted.
    pub(crate) fn received(&self, message_type: u8) {
        if let Some(counter) = usize::from(message_type).checked_sub(1).and_then(|i| self.received.get(i)) {
            counter.inc();
        }
    }

    pub(crate) fn sent(&self, message_type: u8) {
        if let Some(counter) = usize::from(message_type).checked_sub(1).and_then(|i| self.sent.get(i)) {
            counter.inc();
        }
    }

    /// (type name, received, sent) for every type.
    pub(crate) fn by_type(&self) -> impl Iterator<Item = (&'static str, u64, u64)> + '_ {
        DHCP4_MESSAGE_TYPES.iter().enumerate().map(|(i, name)| (*name, self.received[i].get(), self.sent[i].get()))
    }
}

/// The counters of every service, shared by the services that increment them and the scrape that reads them.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub dns: DnsMetrics,
    pub dhcp4_server: Dhcp4ServerMetrics,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_slow_ones_land_in_inf() {
        let histogram = Histogram::new(&[0.01, 0.1]);
        histogram.observe(Duration::from_millis(5));
        histogram.observe(Duration::from_millis(50));
        histogram.observe(Duration::from_millis(50));
        histogram.observe(Duration::from_secs(3));
        let (buckets, count, sum) = histogram.snapshot();
        assert_eq!(buckets, vec![(0.01, 1), (0.1, 3)]);
        assert_eq!(count, 4);
        assert!((sum - 3.105).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn dhcp_types_outside_the_table_are_not_counted() {
        let metrics = Dhcp4ServerMetrics::default();
        for kind in [0, 1, 1, 5, 9, 255] {
            metrics.received(kind);
        }
        metrics.sent(2);
        let counts: Vec<_> = metrics.by_type().collect();
        assert_eq!(counts[0], ("discover", 2, 0));
        assert_eq!(counts[1], ("offer", 0, 1));
        assert_eq!(counts[4], ("ack", 1, 0));
        assert_eq!(counts.iter().map(|c| c.1).sum::<u64>(), 3);
    }
}
