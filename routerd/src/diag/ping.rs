//! Ping and traceroute for the API (gNOI System.Ping/Traceroute shapes): events are sent as they happen and a
//! closed receiver (the client went away) ends the run.

use std::{net::IpAddr, time::Duration};

use tokio::sync::mpsc;

use super::icmp::{Pinger, ReplyKind};

#[derive(Clone, Debug)]
pub(crate) struct PingOptions {
    pub destination: IpAddr,
    /// `None`: until the client stops.
    pub count: Option<u32>,
    pub interval: Duration,
    pub wait: Duration,
    pub size: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum PingEvent {
    Reply { from: IpAddr, sequence: u16, ttl: u8, bytes: usize, rtt: Duration },
    Summary(Summary),
}

#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Summary {
    pub sent: u32,
    pub received: u32,
    pub min: Duration,
    pub avg: Duration,
    pub max: Duration,
    pub std_dev: Duration,
}

impl Summary {
    pub(crate) fn new(sent: u32, rtts: &[Duration]) -> Summary {
        if rtts.is_empty() {
            return Summary { sent, ..Default::default() };
        }
        let seconds: Vec<f64> = rtts.iter().map(Duration::as_secs_f64).collect();
        let mean = seconds.iter().sum::<f64>() / seconds.len() as f64;
        let variance = seconds.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / seconds.len() as f64;
        Summary {
            sent,
            received: rtts.len() as u32,
            min: rtts.iter().min().copied().unwrap_or_default(),
            max: rtts.iter().max().copied().unwrap_or_default(),
            avg: Duration::from_secs_f64(mean),
            std_dev: Duration::from_secs_f64(variance.sqrt()),
        }
    }
}

pub(crate) async fn ping(options: PingOptions, events: mpsc::Sender<PingEvent>) -> std::io::Result<()> {
    let pinger = Pinger::new(options.destination.is_ipv6(), None)?;
    let mut rtts = Vec::new();
    let mut sent = 0u32;
    while options.count.is_none_or(|count| sent < count) {
        sent += 1;
        let started = tokio::time::Instant::now();
        let sequence = (sent % 65536) as u16;
        if let Some((reply, rtt)) = pinger.ping_once(options.destination, sequence, options.size, options.wait).await?
            && reply.kind == ReplyKind::EchoReply
        {
            rtts.push(rtt);
            let event = PingEvent::Reply { from: reply.from, sequence, ttl: reply.ttl, bytes: reply.bytes, rtt };
            if events.send(event).await.is_err() {
                return Ok(());
            }
        }
        if events.is_closed() {
            return Ok(());
        }
        if options.count.is_none_or(|count| sent < count) {
            tokio::time::sleep_until(started + options.interval).await;
        }
    }
    let _ = events.send(PingEvent::Summary(Summary::new(sent, &rtts))).await;
    Ok(())
}

#[derive(Clone, Debug)]
pub(crate) struct TraceOptions {
    pub destination: IpAddr,
    pub initial_ttl: u8,
    pub max_ttl: u8,
    pub wait: Duration,
    pub probes_per_hop: u8,
    pub size: usize,
}

/// One probe of one hop: who answered (nobody when `kind` is `None`), and how fast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Hop {
    pub hop: u8,
    pub from: Option<IpAddr>,
    pub rtt: Duration,
    pub kind: Option<ReplyKind>,
}

/// Probes hop by hop until the destination answers, something says it is unreachable, or `max_ttl`.
pub(crate) async fn traceroute(options: TraceOptions, events: mpsc::Sender<Hop>) -> std::io::Result<()> {
    let pinger = Pinger::new(options.destination.is_ipv6(), None)?;
    let mut sequence = 0u16;
    for ttl in options.initial_ttl.max(1)..=options.max_ttl {
        pinger.set_ttl(u32::from(ttl))?;
        let mut done = false;
        for _ in 0..options.probes_per_hop {
            sequence = sequence.wrapping_add(1);
            let hop = match pinger.ping_once(options.destination, sequence, options.size, options.wait).await? {
                Some((reply, rtt)) => {
                    done |= reply.kind != ReplyKind::TimeExceeded;
                    Hop { hop: ttl, from: Some(reply.from), rtt, kind: Some(reply.kind) }
                }
                None => Hop { hop: ttl, from: None, rtt: Duration::ZERO, kind: None },
            };
            if events.send(hop).await.is_err() {
                return Ok(());
            }
        }
        if done {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_of_round_trips() {
        let ms = Duration::from_millis;
        let summary = Summary::new(4, &[ms(1), ms(3)]);
        assert_eq!((summary.sent, summary.received), (4, 2));
        assert_eq!((summary.min, summary.avg, summary.max, summary.std_dev), (ms(1), ms(2), ms(3), ms(1)));
        assert_eq!(Summary::new(3, &[]), Summary { sent: 3, ..Default::default() });
    }

    /// Raw sockets need root (CAP_NET_RAW), as the test suite has (CI runs as root): without it this fails
    /// rather than passing untested. The loopback answers without any network.
    #[tokio::test]
    async fn loopback_answers_ping_and_is_one_hop_away() {
        if let Err(error) = Pinger::new(false, None) {
            panic!("a raw ICMP socket (this test needs root, as the whole suite does): {error}");
        }
        let destination: IpAddr = "127.0.0.1".parse().expect("literal");
        let (sender, mut receiver) = mpsc::channel(16);
        let options = PingOptions {
            destination,
            count: Some(2),
            interval: Duration::from_millis(10),
            wait: Duration::from_secs(1),
            size: 56,
        };
        ping(options, sender).await.expect("ping runs");
        let mut events = Vec::new();
        while let Some(event) = receiver.recv().await {
            events.push(event);
        }
        assert!(
            matches!(events[0], PingEvent::Reply { from, sequence: 1, bytes: 64, .. } if from == destination),
            "{events:?}"
        );
        assert!(matches!(events.last(), Some(PingEvent::Summary(Summary { sent: 2, received: 2, .. }))), "{events:?}");

        let (sender, mut receiver) = mpsc::channel(16);
        let options = TraceOptions {
            destination,
            initial_ttl: 1,
            max_ttl: 5,
            wait: Duration::from_secs(1),
            probes_per_hop: 2,
            size: 32,
        };
        traceroute(options, sender).await.expect("traceroute runs");
        let mut hops = Vec::new();
        while let Some(hop) = receiver.recv().await {
            hops.push(hop);
        }
        assert_eq!(hops.len(), 2, "one hop, two probes: {hops:?}");
        assert!(hops.iter().all(|h| h.hop == 1 && h.from == Some(destination) && h.kind == Some(ReplyKind::EchoReply)));
    }
}
