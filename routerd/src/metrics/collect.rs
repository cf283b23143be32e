//! One scrape: every metric family rendered from the services' counters and the daemon's current views.

use std::{sync::Arc, time::SystemTime};

use tokio::sync::watch;

use super::text::{Exposition, Kind};
use crate::{
    capture::service::CaptureHub,
    counters::Metrics,
    diag::{Outcome, Report},
    uplink::state::UplinkSnapshot,
};

/// Everything a scrape reads.
#[derive(Clone)]
pub(crate) struct Collector {
    pub metrics: Arc<Metrics>,
    pub leases: watch::Receiver<crate::lan::dhcp4d::LeaseSnapshot>,
    pub uplink: watch::Receiver<UplinkSnapshot>,
    pub capture: Option<CaptureHub>,
    pub diagnostics: watch::Receiver<Option<Arc<Report>>>,
    /// Whether routerd loads a firewall (its counters are read from the kernel at each scrape).
    pub firewall: bool,
    pub started_at: SystemTime,
    /// Every service's state, as `rtrctl status` shows it.
    pub services: watch::Receiver<crate::supervisor::Statuses>,
    /// The LANs' DHCPv4 pools, for the free addresses.
    pub pools: Vec<crate::lan::dhcp4d::PoolConfig>,
    /// The firewall's counters as last read, shared by every scrape.
    pub firewall_cache: Arc<FirewallCache>,
}

/// The firewall's counters are read from the kernel at most once per [`FIREWALL_READ_EVERY`], by one scrape at
/// a time; the others wait for that read and share it, so a scrape flood costs no more kernel work than one
/// scraper.
#[derive(Debug, Default)]
pub(crate) struct FirewallCache {
    last: tokio::sync::Mutex<Option<(tokio::time::Instant, Arc<FirewallCounters>)>>,
    reads: std::sync::atomic::AtomicU64,
}

pub(crate) const FIREWALL_READ_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl FirewallCache {
    /// The counters, read now if the last read is older than [`FIREWALL_READ_EVERY`].
    pub(crate) async fn get<F>(&self, read: F) -> Arc<FirewallCounters>
    where
        F: FnOnce() -> FirewallCounters + Send + 'static,
    {
        let mut last = self.last.lock().await;
        if let Some((at, counters)) = last.as_ref()
            && at.elapsed() < FIREWALL_READ_EVERY
        {
            return counters.clone();
        }
        self.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let counters = Arc::new(tokio::task::spawn_blocking(read).await.unwrap_or_default());
        *last = Some((tokio::time::Instant::now(), counters.clone()));
        counters
    }

    #[cfg(test)]
    /// How often the kernel was asked.
    pub(crate) fn reads(&self) -> u64 {
        self.reads.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Current counters of the firewall's accounted rules: (tag, packets, bytes), tag as in
/// [`crate::firewall::ruleset::accounting_tag`].
pub(crate) type FirewallCounters = Vec<(String, u64, u64)>;

fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

impl Collector {
    pub(crate) async fn render(&self) -> String {
        let firewall = if self.firewall {
            self.firewall_cache
                .get(|| {
                    crate::firewall::apply::current_counters()
                        .into_iter()
                        .filter_map(|(comment, (packets, bytes))| {
                            comment.split_once(' ').map(|(_, tag)| (tag.to_string(), packets, bytes))
                        })
                        .collect()
                })
                .await
        } else {
            Arc::new(Vec::new())
        };
        let memory = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        self.render_with(&firewall, &memory, crate::clock::now())
    }

    /// The exposition from already gathered kernel state (tests give their own).
    pub(crate) fn render_with(&self, firewall: &FirewallCounters, proc_status: &str, now: SystemTime) -> String {
        let mut out = Exposition::default();
        out.family("routerd_build_info", Kind::Gauge, "routerd's version; always 1.").sample(
            "routerd_build_info",
            &[("version", &crate::update::running_version())],
            1.0,
        );
        process(&mut out, proc_status, self.started_at);
        self.dhcp4_server(&mut out, now);
        self.uplink_clients(&mut out, now);
        self.dns(&mut out);
        firewall_families(&mut out, firewall);
        self.capture(&mut out);
        self.diagnostics(&mut out);
        self.services(&mut out);
        out.finish()
    }

    fn services(&self, out: &mut Exposition) {
        let statuses = self.services.borrow().clone();
        out.family("routerd_service_up", Kind::Gauge, "1 while the service runs (0: failed and restarting, stopped).");
        for (name, status) in &statuses {
            let up = status.state == crate::supervisor::ServiceState::Running;
            out.sample("routerd_service_up", &[("service", name)], if up { 1.0 } else { 0.0 });
        }
        out.family("routerd_service_restarts_total", Kind::Counter, "How often the supervisor restarted the service.");
        for (name, status) in &statuses {
            out.sample("routerd_service_restarts_total", &[("service", name)], f64::from(status.restarts));
        }
    }

    fn dhcp4_server(&self, out: &mut Exposition, now: SystemTime) {
        let leases = self.leases.borrow();
        out.family(
            "routerd_dhcp4_server_pool_free_addresses",
            Kind::Gauge,
            "Addresses of the LAN's DHCPv4 pool that a new device could get (0: the pool is exhausted).",
        );
        for pool in &self.pools {
            let (free, _) = pool.usage(leases.iter(), now);
            out.sample("routerd_dhcp4_server_pool_free_addresses", &[("interface", &pool.interface)], f64::from(free));
        }
        let mut counts: std::collections::BTreeMap<(String, &str), u64> = Default::default();
        for lease in leases.iter() {
            let state = if lease.is_static() {
                "static"
            } else if lease.expired(now) {
                "expired"
            } else {
                "active"
            };
            *counts.entry((lease.interface.clone(), state)).or_default() += 1;
        }
        out.family("routerd_dhcp4_server_leases", Kind::Gauge, "Leases of the LANs' DHCPv4 server by state.");
        for ((interface, state), count) in &counts {
            out.sample("routerd_dhcp4_server_leases", &[("interface", interface), ("state", state)], *count as f64);
        }
        let server = &self.metrics.dhcp4_server;
        out.family("routerd_dhcp4_server_received_total", Kind::Counter, "DHCPv4 messages received by type.");
        for (kind, received, _) in server.by_type() {
            out.sample("routerd_dhcp4_server_received_total", &[("type", kind)], received as f64);
        }
        out.family("routerd_dhcp4_server_sent_total", Kind::Counter, "DHCPv4 messages sent by type.");
        for (kind, _, sent) in server.by_type() {
            out.sample("routerd_dhcp4_server_sent_total", &[("type", kind)], sent as f64);
        }
        out.family(
            "routerd_dhcp4_server_ignored_total",
            Kind::Counter,
            "DHCPv4 packets ignored (malformed, not for us).",
        )
        .sample("routerd_dhcp4_server_ignored_total", &[], server.ignored.get() as f64);
        out.family(
            "routerd_dhcp4_server_offers_outstanding",
            Kind::Gauge,
            "Addresses offered and not yet requested (a DISCOVER flood shows here).",
        )
        .sample(
            "routerd_dhcp4_server_offers_outstanding",
            &[],
            server.offers_outstanding.load(std::sync::atomic::Ordering::Relaxed) as f64,
        );
    }

    fn uplink_clients(&self, out: &mut Exposition, now: SystemTime) {
        let snapshot = self.uplink.borrow();
        let remaining = |expires: Option<SystemTime>| {
            expires.map(|at| match at.duration_since(now) {
                Ok(ahead) => ahead.as_secs_f64(),
                Err(behind) => -behind.duration().as_secs_f64(),
            })
        };
        let clients = [
            ("dhcp4", snapshot.dhcp4.as_ref().map(|s| (s.phase.label(), remaining(s.expires_at)))),
            ("dhcp6", snapshot.dhcp6.as_ref().map(|s| (s.phase.label(), remaining(s.expires_at)))),
        ];
        out.family(
            "routerd_uplink_client_state",
            Kind::Gauge,
            "The uplink's DHCP clients: 1 for the state each is in (no sample before a first lease).",
        );
        for (client, state) in &clients {
            if let Some((state, _)) = state {
                out.sample("routerd_uplink_client_state", &[("client", client), ("state", state)], 1.0);
            }
        }
        out.family(
            "routerd_uplink_lease_remaining_seconds",
            Kind::Gauge,
            "Seconds until the uplink's lease expires; negative once expired (the configuration is kept).",
        );
        for (client, state) in &clients {
            if let Some((_, Some(seconds))) = state {
                out.sample("routerd_uplink_lease_remaining_seconds", &[("client", client)], seconds.round());
            }
        }
    }

    fn dns(&self, out: &mut Exposition) {
        let dns = &self.metrics.dns;
        out.family("routerd_dns_queries_total", Kind::Counter, "DNS queries from the LANs by how they were answered.");
        for (outcome, counter) in [
            ("local", &dns.local),
            ("cache_hit", &dns.cache_hit),
            ("upstream", &dns.upstream),
            ("blocked_rebinding", &dns.rebinding_blocked),
            ("failed", &dns.failed),
            ("joined", &dns.joined),
            ("dropped", &dns.dropped),
        ] {
            out.sample("routerd_dns_queries_total", &[("outcome", outcome)], counter.get() as f64);
        }
        let (buckets, count, sum) = dns.upstream_latency.snapshot();
        out.family(
            "routerd_dns_upstream_duration_seconds",
            Kind::Histogram,
            "Time the upstream servers took to answer a forwarded query.",
        )
        .histogram("routerd_dns_upstream_duration_seconds", &buckets, count, sum);
    }

    fn capture(&self, out: &mut Exposition) {
        let Some(hub) = &self.capture else { return };
        let (len, capacity, overwritten, reader_drops) = {
            let ring = hub.ring.lock().unwrap_or_else(|p| p.into_inner());
            (ring.len(), ring.capacity(), ring.overwritten, ring.reader_drops)
        };
        out.family("routerd_capture_ring_packets", Kind::Gauge, "Packets in the capture ring now.").sample(
            "routerd_capture_ring_packets",
            &[],
            len as f64,
        );
        out.family("routerd_capture_ring_capacity_packets", Kind::Gauge, "Packets the capture ring holds at most.")
            .sample("routerd_capture_ring_capacity_packets", &[], capacity as f64);
        out.family(
            "routerd_capture_ring_overwritten_total",
            Kind::Counter,
            "Packets pushed out of the full capture ring by newer ones.",
        )
        .sample("routerd_capture_ring_overwritten_total", &[], overwritten as f64);
        out.family(
            "routerd_capture_reader_dropped_total",
            Kind::Counter,
            "Packets live capture readers lost because they read too slowly.",
        )
        .sample("routerd_capture_reader_dropped_total", &[], reader_drops as f64);
    }

    fn diagnostics(&self, out: &mut Exposition) {
        let last = self.diagnostics.borrow().clone();
        let Some(report) = last else { return };
        out.family("routerd_diagnostics_healthy", Kind::Gauge, "1 when every diagnostic check passed at the last run.")
            .sample("routerd_diagnostics_healthy", &[], if report.healthy() { 1.0 } else { 0.0 });
        out.family(
            "routerd_diagnostics_check_ok",
            Kind::Gauge,
            "Per diagnostic check: 1 passed, 0 failed or skipped (a check it depends on failed).",
        );
        for node in &report.nodes {
            let outcome = match node.outcome {
                Outcome::Ok => "ok",
                Outcome::Failed => "failed",
                Outcome::Skipped => "skipped",
            };
            out.sample(
                "routerd_diagnostics_check_ok",
                &[("check", &node.id), ("outcome", outcome)],
                if node.outcome == Outcome::Ok { 1.0 } else { 0.0 },
            );
        }
        out.family(
            "routerd_diagnostics_last_run_timestamp_seconds",
            Kind::Gauge,
            "When the diagnostics last ran (Unix time).",
        )
        .sample(
            "routerd_diagnostics_last_run_timestamp_seconds",
            &[],
            unix_seconds(report.finished_at).round(),
        );
    }
}

fn process(out: &mut Exposition, proc_status: &str, started_at: SystemTime) {
    let kilobytes = |field: &str| {
        proc_status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
    };
    if let Some(rss) = kilobytes("VmRSS:") {
        out.family("process_resident_memory_bytes", Kind::Gauge, "Resident memory size in bytes.").sample(
            "process_resident_memory_bytes",
            &[],
            rss * 1024.0,
        );
    }
    if let Some(virtual_size) = kilobytes("VmSize:") {
        out.family("process_virtual_memory_bytes", Kind::Gauge, "Virtual memory size in bytes.").sample(
            "process_virtual_memory_bytes",
            &[],
            virtual_size * 1024.0,
        );
    }
    out.family("process_start_time_seconds", Kind::Gauge, "Start time of the process since the Unix epoch.").sample(
        "process_start_time_seconds",
        &[],
        unix_seconds(started_at).round(),
    );
}

fn firewall_families(out: &mut Exposition, counters: &FirewallCounters) {
    if counters.is_empty() {
        return;
    }
    fn by_kind<'a>(counters: &'a FirewallCounters, kind: &'a str) -> impl Iterator<Item = &'a (String, u64, u64)> {
        counters.iter().filter(move |(tag, _, _)| tag.split('/').next() == Some(kind))
    }
    for (unit, help) in [
        (
            "packets",
            "Packets the router forwarded (accepted by its filter) by family; offloaded flows count only their start.",
        ),
        ("bytes", "Bytes the router forwarded (accepted by its filter) by family."),
    ] {
        let name = format!("routerd_firewall_forwarded_{unit}_total");
        out.family(&name, Kind::Counter, help);
        for (tag, packets, bytes) in by_kind(counters, "forwarded") {
            let family = tag.split('/').nth(1).unwrap_or("any");
            out.sample(&name, &[("family", family)], if unit == "packets" { *packets } else { *bytes } as f64);
        }
    }
    out.family(
        "routerd_firewall_dropped_packets_total",
        Kind::Counter,
        "Packets the firewall dropped by chain (input: to the router, forward: through it), family and reason.",
    );
    for (tag, packets, _) in by_kind(counters, "dropped") {
        let parts: Vec<&str> = tag.split('/').collect();
        if let [_, chain, family, reason] = parts.as_slice() {
            out.sample(
                "routerd_firewall_dropped_packets_total",
                &[("chain", chain), ("family", family), ("reason", reason)],
                *packets as f64,
            );
        }
    }
    out.family(
        "routerd_firewall_nat_packets_total",
        Kind::Counter,
        "Packets starting a NATed IPv4 connection: masquerade (LAN to internet), port_forward, hairpin.",
    );
    for (tag, packets, _) in by_kind(counters, "nat") {
        let kind = tag.split('/').nth(1).unwrap_or("other");
        out.sample("routerd_firewall_nat_packets_total", &[("kind", kind), ("family", "ipv4")], *packets as f64);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn collector() -> Collector {
        let (_, leases) = watch::channel(crate::lan::dhcp4d::LeaseSnapshot::default());
        let (_, uplink) = watch::channel(UplinkSnapshot::default());
        let (_, diagnostics) = watch::channel(None);
        Collector {
            metrics: Arc::new(Metrics::default()),
            leases,
            uplink,
            capture: Some(CaptureHub::new(vec!["uplink0".into()], 10)),
            diagnostics,
            firewall: true,
            started_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            services: watch::channel(crate::supervisor::Statuses::new()).1,
            pools: Vec::new(),
            firewall_cache: Arc::default(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_scrape_flood_reads_the_firewall_once_a_second() {
        let cache = Arc::new(FirewallCache::default());
        let scrapes: Vec<_> = (0..100)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.get(|| vec![("nat/masquerade".into(), 1, 2)]).await })
            })
            .collect();
        for scrape in scrapes {
            assert_eq!(scrape.await.expect("scrape").len(), 1);
        }
        assert_eq!(cache.reads(), 1, "100 scrapes at once, one read");
        tokio::time::advance(FIREWALL_READ_EVERY).await;
        cache.get(Vec::new).await;
        assert_eq!(cache.reads(), 2, "a second later, read again");
    }

    #[test]
    fn every_family_is_declared_once_before_its_samples() {
        let collector = collector();
        collector.metrics.dns.cache_hit.inc();
        collector.metrics.dns.upstream_latency.observe(Duration::from_millis(3));
        collector.metrics.dhcp4_server.received(1);
        let firewall = vec![
            ("forwarded/ipv4".to_string(), 10, 1000),
            ("dropped/input/ipv6/policy".to_string(), 2, 200),
            ("nat/masquerade".to_string(), 1, 60),
        ];
        let text = collector.render_with(&firewall, "VmRSS:\t  5120 kB\nVmSize:\t 10240 kB\n", SystemTime::now());
        let mut declared = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap_or_default().to_string();
                assert!(declared.insert(name.clone()), "{name} declared twice:\n{text}");
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap_or_default();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix).filter(|base| declared.contains(*base)))
                    .unwrap_or(name);
                assert!(declared.contains(family), "{name} before its TYPE line:\n{text}");
            }
        }
        for expected in [
            "routerd_dns_queries_total{outcome=\"cache_hit\"} 1",
            "routerd_dns_upstream_duration_seconds_bucket{le=\"0.005\"} 1",
            "routerd_dhcp4_server_received_total{type=\"discover\"} 1",
            "routerd_firewall_forwarded_packets_total{family=\"ipv4\"} 10",
            "routerd_firewall_dropped_packets_total{chain=\"input\",family=\"ipv6\",reason=\"policy\"} 2",
            "routerd_firewall_nat_packets_total{kind=\"masquerade\",family=\"ipv4\"} 1",
            "routerd_capture_ring_capacity_packets 10",
            "process_resident_memory_bytes 5242880",
            "process_start_time_seconds 1700000000",
        ] {
            assert!(text.contains(expected), "{expected} missing:\n{text}");
        }
    }

    #[test]
    fn garbage_in_proc_status_leaves_the_memory_metrics_out() {
        let text = collector().render_with(&Vec::new(), "VmRSS: lots\n", SystemTime::now());
        assert!(!text.contains("process_resident_memory_bytes"), "{text}");
        assert!(!text.contains("routerd_firewall"), "no counters, no firewall families: {text}");
    }
}
