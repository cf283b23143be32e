//! `rtrctl ping` and `rtrctl traceroute`: run on the router, printed as the answers come.

use std::io::Write;

use routerd_proto::v1 as pb;
use serde::Serialize;

use crate::{
    cli::{Cli, Family},
    error::CliError,
    output::Format,
};

fn l3(family: Family) -> i32 {
    let protocol = if family.ipv4 {
        pb::L3Protocol::Ipv4
    } else if family.ipv6 {
        pb::L3Protocol::Ipv6
    } else {
        pb::L3Protocol::Unspecified
    };
    protocol as i32
}

fn seconds_to_nanos(flag: &str, seconds: f64) -> Result<i64, CliError> {
    if !(0.001..=60.0).contains(&seconds) {
        return Err(CliError::Usage(format!("{flag}: {seconds} s is outside 0.001–60 s")));
    }
    Ok((seconds * 1e9) as i64)
}

fn ms(nanos: i64) -> f64 {
    (nanos as f64 / 1e6 * 1000.0).round() / 1000.0
}

#[derive(Debug, Serialize)]
pub struct PingReplyDoc {
    pub source: String,
    pub sequence: i32,
    pub ttl: i32,
    pub bytes: i32,
    pub time_ms: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct PingSummaryDoc {
    pub sent: i32,
    pub received: i32,
    pub min_ms: f64,
    pub avg_ms: f64,
    pub max_ms: f64,
    pub std_dev_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct PingDoc {
    pub destination: String,
    pub replies: Vec<PingReplyDoc>,
    pub summary: PingSummaryDoc,
}

pub async fn ping(
    cli: &Cli,
    host: &str,
    count: u32,
    interval: f64,
    wait: f64,
    size: u16,
    family: Family,
) -> Result<(), CliError> {
    let request = pb::PingRequest {
        destination: host.to_string(),
        count: if count == 0 { -1 } else { i32::try_from(count).unwrap_or(i32::MAX) },
        interval: seconds_to_nanos("--interval", interval)?,
        wait: seconds_to_nanos("--wait", wait)?,
        size: i32::from(size.max(1)),
        l3protocol: l3(family),
        ..Default::default()
    };
    let mut client = pb::diagnostics_service_client::DiagnosticsServiceClient::new(super::connect(cli).await?);
    let mut stream = client.ping(request).await.map_err(|status| CliError::from_status("ping", &status))?.into_inner();
    let table = cli.output == Format::Table;
    if table {
        println!("PING {host} from the router");
    }
    let mut doc = PingDoc { destination: host.to_string(), replies: Vec::new(), summary: PingSummaryDoc::default() };
    while let Some(response) = stream.message().await.map_err(|status| CliError::from_status("ping", &status))? {
        if response.sent > 0 {
            doc.summary = PingSummaryDoc {
                sent: response.sent,
                received: response.received,
                min_ms: ms(response.min_time),
                avg_ms: ms(response.avg_time),
                max_ms: ms(response.max_time),
                std_dev_ms: ms(response.std_dev),
            };
            continue;
        }
        let reply = PingReplyDoc {
            source: response.source,
            sequence: response.sequence,
            ttl: response.ttl,
            bytes: response.bytes,
            time_ms: ms(response.time),
        };
        if table {
            let ttl = if reply.ttl > 0 { format!(" ttl={}", reply.ttl) } else { String::new() };
            println!(
                "{} bytes from {}: icmp_seq={}{ttl} time={:.3} ms",
                reply.bytes, reply.source, reply.sequence, reply.time_ms
            );
            let _ = std::io::stdout().flush();
        }
        doc.replies.push(reply);
    }
    let summary = &doc.summary;
    let loss = if summary.sent > 0 {
        100.0 * f64::from(summary.sent - summary.received) / f64::from(summary.sent)
    } else {
        0.0
    };
    if table {
        println!("\n--- {host} ping statistics (from the router) ---");
        println!("{} packets transmitted, {} received, {loss:.0}% packet loss", summary.sent, summary.received);
        if summary.received > 0 {
            println!(
                "rtt min/avg/max/mdev = {:.3}/{:.3}/{:.3}/{:.3} ms",
                summary.min_ms, summary.avg_ms, summary.max_ms, summary.std_dev_ms
            );
        }
    } else {
        crate::output::print_json(&doc)?;
    }
    if doc.replies.is_empty() {
        return Err(CliError::Negative(format!("{host} did not answer")));
    }
    Ok(())
}

#[derive(Debug, Serialize)]
pub struct ProbeDoc {
    /// Empty when nothing answered in time.
    pub address: String,
    pub rtt_ms: f64,
    /// default (answered), none (no answer), host_unreachable, …
    pub state: String,
}

#[derive(Debug, Serialize)]
pub struct HopDoc {
    pub hop: i32,
    pub probes: Vec<ProbeDoc>,
}

#[derive(Debug, Serialize)]
pub struct TracerouteDoc {
    pub destination_name: String,
    pub destination_address: String,
    pub hops: Vec<HopDoc>,
}

fn state_name(state: i32) -> String {
    pb::TracerouteState::try_from(state)
        .map(|s| s.as_str_name().trim_start_matches("TRACEROUTE_STATE_").to_ascii_lowercase())
        .unwrap_or_else(|_| "unknown".into())
}

/// `3  198.51.100.1  0.123 ms  0.100 ms  *`
fn hop_line(hop: &HopDoc) -> String {
    let mut line = format!("{:>2} ", hop.hop);
    let mut last_address = "";
    for probe in &hop.probes {
        if probe.address.is_empty() {
            line.push_str(" *");
            continue;
        }
        if probe.address != last_address {
            line.push_str(&format!("  {}", probe.address));
            last_address = &probe.address;
        }
        line.push_str(&format!("  {:.3} ms", probe.rtt_ms));
        if probe.state != "default" {
            line.push_str(&format!(" !{}", probe.state));
        }
    }
    line
}

pub async fn traceroute(cli: &Cli, host: &str, max_hops: u8, wait: f64, family: Family) -> Result<(), CliError> {
    if max_hops == 0 {
        return Err(CliError::Usage("--max-hops: at least 1".into()));
    }
    let request = pb::TracerouteRequest {
        destination: host.to_string(),
        initial_ttl: 1,
        max_ttl: i32::from(max_hops),
        wait: seconds_to_nanos("--wait", wait)?,
        l3protocol: l3(family),
        l4protocol: pb::L4Protocol::Icmp as i32,
        ..Default::default()
    };
    let mut client = pb::diagnostics_service_client::DiagnosticsServiceClient::new(super::connect(cli).await?);
    let mut stream =
        client.traceroute(request).await.map_err(|status| CliError::from_status("traceroute", &status))?.into_inner();
    let table = cli.output == Format::Table;
    let mut doc =
        TracerouteDoc { destination_name: host.to_string(), destination_address: String::new(), hops: Vec::new() };
    let print_last = |doc: &TracerouteDoc| {
        if let Some(hop) = doc.hops.last() {
            println!("{}", hop_line(hop));
            let _ = std::io::stdout().flush();
        }
    };
    while let Some(response) = stream.message().await.map_err(|status| CliError::from_status("traceroute", &status))? {
        if response.hop == 0 {
            doc.destination_address = response.destination_address.clone();
            if table {
                println!(
                    "traceroute from the router to {} ({}), {} hops max, {} byte packets",
                    response.destination_name, response.destination_address, response.hops, response.packet_size
                );
            }
            continue;
        }
        let probe = ProbeDoc { address: response.address, rtt_ms: ms(response.rtt), state: state_name(response.state) };
        match doc.hops.last_mut() {
            Some(hop) if hop.hop == response.hop => hop.probes.push(probe),
            _ => {
                if table {
                    print_last(&doc);
                }
                doc.hops.push(HopDoc { hop: response.hop, probes: vec![probe] });
            }
        }
    }
    if table {
        print_last(&doc);
    } else {
        crate::output::print_json(&doc)?;
    }
    let reached = doc
        .hops
        .last()
        .is_some_and(|hop| hop.probes.iter().any(|p| p.address == doc.destination_address && p.state == "default"));
    if !reached {
        return Err(CliError::Negative(format!("{host} was not reached within {max_hops} hops")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hops_print_like_traceroute() {
        let probe =
            |address: &str, rtt_ms: f64, state: &str| ProbeDoc { address: address.into(), rtt_ms, state: state.into() };
        let hop = HopDoc {
            hop: 2,
            probes: vec![
                probe("198.51.100.1", 0.25, "default"),
                probe("", 0.0, "none"),
                probe("198.51.100.1", 0.5, "default"),
            ],
        };
        assert_eq!(hop_line(&hop), " 2   198.51.100.1  0.250 ms *  0.500 ms");
        let unreachable = HopDoc { hop: 1, probes: vec![probe("203.0.113.1", 1.0, "host_unreachable")] };
        assert_eq!(hop_line(&unreachable), " 1   203.0.113.1  1.000 ms !host_unreachable");
        assert_eq!(state_name(pb::TracerouteState::HostUnreachable as i32), "host_unreachable");
    }

    #[test]
    fn durations_outside_reason_are_usage_errors() {
        assert!(seconds_to_nanos("--wait", 0.0).is_err());
        assert!(seconds_to_nanos("--wait", 61.0).is_err());
        assert_eq!(seconds_to_nanos("--wait", 0.5).expect("fine"), 500_000_000);
    }
}
