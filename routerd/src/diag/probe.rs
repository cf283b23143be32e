//! The I/O side of the checks: ICMP echo, TCP connections and DNS queries, each bounded in time.

use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use hickory_proto::{
    op::{Message, Query},
    rr::{RData, RecordType},
};

use super::{icmp::Pinger, plan::Check, tree::Prober};

/// Echo requests a gateway check sends before it gives up.
const PINGS: u16 = 3;
const PING_WAIT: Duration = Duration::from_secs(1);
const TCP_TIMEOUT: Duration = Duration::from_secs(3);

pub(crate) struct NetworkProber;

impl Prober for NetworkProber {
    type Check = Check;

    async fn probe(&self, check: &Check) -> Result<String, String> {
        match check {
            Check::Known(known) => known.clone(),
            Check::Ping { target, interface } => ping(*target, interface.as_deref()).await,
            Check::Tcp { targets } => tcp(targets).await,
            Check::Dns { servers, name } => dns(servers, name).await,
            Check::LanDns { server, name } => lan_dns(*server, name).await,
        }
    }
}

fn millis(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

async fn ping(target: IpAddr, interface: Option<&str>) -> Result<String, String> {
    let pinger = Pinger::new(target.is_ipv6(), interface).map_err(|e| format!("opening an ICMP socket: {e}"))?;
    for sequence in 1..=PINGS {
        match pinger.ping_once(target, sequence, 56, PING_WAIT).await {
            Ok(Some((reply, rtt))) if reply.kind == super::icmp::ReplyKind::EchoReply => {
                return Ok(format!("{target} answered in {}", millis(rtt)));
            }
            Ok(Some((reply, _))) => return Err(format!("{target}: {:?} from {}", reply.kind, reply.from)),
            Ok(None) => {}
            Err(error) => return Err(format!("pinging {target}: {error}")),
        }
    }
    Err(format!("{target} did not answer {PINGS} pings ({} s each)", PING_WAIT.as_secs()))
}

async fn tcp(targets: &[SocketAddr]) -> Result<String, String> {
    let mut problems = Vec::new();
    for target in targets {
        let started = Instant::now();
        match tokio::time::timeout(TCP_TIMEOUT, tokio::net::TcpStream::connect(target)).await {
            Ok(Ok(_)) => return Ok(format!("connected to {target} in {}", millis(started.elapsed()))),
            Ok(Err(error)) => problems.push(format!("{target}: {error}")),
            Err(_) => problems.push(format!("{target}: no answer within {} s", TCP_TIMEOUT.as_secs())),
        }
    }
    Err(problems.join("; "))
}

/// The question for `name`: the root zone's servers for `.`, else its IPv4 address.
pub(crate) fn question(name: &str) -> Result<Query, String> {
    let parsed = crate::config::parse_dns_name(name)?;
    let kind = if parsed.is_root() { RecordType::NS } else { RecordType::A };
    Ok(Query::query(parsed, kind))
}

/// "NAME TYPE: answers" for a response.
fn describe(query: &Query, response: &Message) -> String {
    let answers: Vec<String> = response
        .answers
        .iter()
        .map(|record| match &record.data {
            RData::A(a) => a.0.to_string(),
            RData::AAAA(aaaa) => aaaa.0.to_string(),
            other => other.to_string(),
        })
        .take(3)
        .collect();
    let what = if answers.is_empty() {
        format!("{} (no records)", response.metadata.response_code)
    } else {
        answers.join(", ")
    };
    format!("{} {}: {what}", query.name(), query.query_type())
}

async fn dns(servers: &[SocketAddr], name: &str) -> Result<String, String> {
    let query = question(name)?;
    let started = Instant::now();
    let response = crate::lan::dns::upstream::resolve(servers, &query).await.map_err(|e| e.to_string())?;
    Ok(format!("{} via {} in {}", describe(&query, &response), servers[0].ip(), millis(started.elapsed())))
}

async fn lan_dns(server: SocketAddr, name: &str) -> Result<String, String> {
    let query = question(name)?;
    let started = Instant::now();
    let response = crate::lan::dns::upstream::resolve(&[server], &query).await.map_err(|e| e.to_string())?;
    if response.answers.is_empty() {
        return Err(format!(
            "{server} answered {} without records for the router's name",
            response.metadata.response_code
        ));
    }
    Ok(format!("{server} answers {} in {}", describe(&query, &response), millis(started.elapsed())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_asks_for_its_servers_and_names_for_an_address() {
        assert_eq!(question(".").expect("root").query_type(), RecordType::NS);
        let query = question("example.com").expect("a name");
        assert_eq!((query.name().to_string().as_str(), query.query_type()), ("example.com.", RecordType::A));
        assert!(question("bad..name").is_err());
    }

    #[tokio::test]
    async fn known_results_are_passed_through_and_unreachable_targets_fail_with_the_reason() {
        let prober = NetworkProber;
        assert_eq!(prober.probe(&Check::Known(Ok("fine".into()))).await, Ok("fine".into()));
        // Nothing listens on port 1 of loopback: refused at once.
        let refused = prober.probe(&Check::Tcp { targets: vec!["127.0.0.1:1".parse().expect("literal")] }).await;
        assert!(refused.as_ref().is_err_and(|why| why.contains("127.0.0.1:1")), "{refused:?}");
    }
}
