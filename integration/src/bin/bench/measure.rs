//! What the benchmarks read off processes and tools: CPU time and resident memory of a process tree (routerd
//! is a keeper and its daemon), and the figures perfdhcp and dnsperf print.

use std::fs;

/// The process and all its descendants.
pub(crate) fn tree(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut index = 0;
    while index < all.len() {
        let parent = all[index];
        index += 1;
        let Ok(tasks) = fs::read_dir(format!("/proc/{parent}/task")) else { continue };
        for task in tasks.flatten() {
            let children = fs::read_to_string(task.path().join("children")).unwrap_or_default();
            all.extend(children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
    }
    all
}

/// CPU seconds (user and system) a process tree has used so far.
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    tree(pid)
        .iter()
        .filter_map(|pid| fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            // Fields after the command name (which may contain spaces), from field 3 on: utime is 14, stime 15.
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            Some(fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?)
        })
        .sum::<f64>()
        / ticks
}

/// Resident memory in KiB of each process of the tree, the process itself first.
pub(crate) fn rss_kib(pid: u32) -> Vec<u64> {
    tree(pid)
        .iter()
        .map(|pid| {
            fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().trim_end_matches(" kB").to_string()))
                })
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        })
        .collect()
}

/// The resident memory of `pid` alone, split into allocated (anonymous) and mapped files (its binary and
/// libraries), in KiB.
pub(crate) fn rss_split_kib(pid: u32) -> (u64, u64) {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |label: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(label))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("RssAnon:"), field("RssFile:"))
}

/// The number after `label` on the first line (trimmed) that starts with it.
pub(crate) fn number_after(text: &str, label: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next()?.trim_end_matches('%').parse().ok())
}

/// One perfdhcp run: the rate it reached, the share of DISCOVERs that never got their ACK, and the average
/// latency of a whole exchange (DISCOVER→OFFER plus REQUEST→ACK), in ms.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct DhcpRun {
    pub rate: f64,
    pub lost: f64,
    pub latency_ms: f64,
    /// Of the latency: DISCOVER→OFFER and REQUEST→ACK.
    pub offer_ms: f64,
    pub ack_ms: f64,
    pub exchanges: f64,
}

pub(crate) fn parse_perfdhcp(text: &str) -> Option<DhcpRun> {
    let section = |name: &str| text.split(&format!("***Statistics for: {name}***")).nth(1);
    let discover = section("DISCOVER-OFFER")?;
    let request = section("REQUEST-ACK")?;
    let discovers = number_after(discover, "sent packets:")?;
    let acks = number_after(request, "received packets:")?;
    let (offer_ms, ack_ms) = (number_after(discover, "avg delay:")?, number_after(request, "avg delay:")?);
    Some(DhcpRun {
        rate: number_after(text, "Rate:")?,
        lost: if discovers > 0.0 { 1.0 - acks / discovers } else { 1.0 },
        latency_ms: offer_ms + ack_ms,
        offer_ms,
        ack_ms,
        exchanges: acks,
    })
}

/// One dnsperf run: queries per second answered, the share lost, the average latency in ms.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct DnsRun {
    pub rate: f64,
    pub lost: f64,
    pub latency_ms: f64,
    pub completed: f64,
}

pub(crate) fn parse_dnsperf(text: &str) -> Option<DnsRun> {
    let sent = number_after(text, "Queries sent:")?;
    let completed = number_after(text, "Queries completed:")?;
    Some(DnsRun {
        rate: number_after(text, "Queries per second:")?,
        lost: if sent > 0.0 { 1.0 - completed / sent } else { 1.0 },
        latency_ms: number_after(text, "Average Latency (s):")? * 1000.0,
        completed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfdhcp_and_dnsperf_reports_are_read() {
        let perfdhcp = "***Rate statistics***\nRate: 998.5 4-way exchanges/second, expected rate: 1000\n\n\
            ***Statistics for: DISCOVER-OFFER***\nsent packets: 10000\nreceived packets: 9990\n\
            drops: 10\ndrops ratio: 0.1 %\navg delay: 0.500 ms\n\n***Statistics for: REQUEST-ACK***\n\
            sent packets: 9990\nreceived packets: 9900\navg delay: 1.250 ms\n";
        let run = parse_perfdhcp(perfdhcp).expect("parsed");
        assert_eq!((run.rate, run.exchanges), (998.5, 9900.0));
        assert!((run.lost - 0.01).abs() < 1e-9 && (run.latency_ms - 1.75).abs() < 1e-9);
        let dnsperf = "  Queries sent:         1000\n  Queries completed:    990 (99.00%)\n\
            Queries per second:   49000.1\n  Average Latency (s):  0.002 (min 0.000, max 0.01)\n";
        let run = parse_dnsperf(dnsperf).expect("parsed");
        assert_eq!(run.rate, 49000.1);
        assert!((run.lost - 0.01).abs() < 1e-9 && (run.latency_ms - 2.0).abs() < 1e-9);
    }
}
