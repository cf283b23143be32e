//! DiagnosticsService: the tree of checks streamed node by node, its summary, and ping/traceroute from the
//! router.

use std::time::Duration;

use routerd_proto::v1::{self as pb, diagnostics_service_server::DiagnosticsService};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::diag::{
    Decided, Diagnostics, Outcome,
    icmp::ReplyKind,
    ping::{self, Hop, PingEvent, PingOptions, TraceOptions},
};

pub(super) struct DiagnosticsApi {
    diagnostics: Diagnostics,
}

impl DiagnosticsApi {
    pub(super) fn new(diagnostics: Diagnostics) -> Self {
        DiagnosticsApi { diagnostics }
    }

    /// The address a ping or traceroute goes to: the request's destination, resolved through the upstream DNS.
    async fn destination(
        &self,
        what: &str,
        source: &str,
        destination: &str,
        l3protocol: i32,
    ) -> Result<std::net::IpAddr, tonic::Status> {
        if !source.is_empty() {
            return Err(tonic::Status::unimplemented(format!("source: {what} leave from the routed address")));
        }
        if destination.is_empty() {
            return Err(tonic::Status::invalid_argument("destination: give a host name or address"));
        }
        self.diagnostics.resolve(destination, family(l3protocol)?).await.map_err(tonic::Status::failed_precondition)
    }
}

fn node_to_proto(node: &Decided) -> pb::DiagnosticNode {
    let outcome = match node.outcome {
        Outcome::Ok => pb::CheckOutcome::Ok,
        Outcome::Failed => pb::CheckOutcome::Failed,
        Outcome::Skipped => pb::CheckOutcome::Skipped,
    };
    pb::DiagnosticNode {
        id: node.id.clone(),
        parent_id: node.parent.clone().unwrap_or_default(),
        title: node.title.clone(),
        outcome: outcome as i32,
        detail: node.detail.clone(),
        took: Some(prost_types::Duration {
            seconds: node.took.as_secs() as i64,
            nanos: node.took.subsec_nanos() as i32,
        }),
    }
}

/// A request's nanoseconds, its default when 0, refused when negative or above `max`.
fn nanos(field: &str, value: i64, default: Duration, max: Duration) -> Result<Duration, tonic::Status> {
    match value {
        0 => Ok(default),
        n if n < 0 || n as u128 > max.as_nanos() => {
            Err(tonic::Status::invalid_argument(format!("{field}: {n} ns is outside 1 ns–{} s", max.as_secs())))
        }
        n => Ok(Duration::from_nanos(n as u64)),
    }
}

fn family(l3protocol: i32) -> Result<Option<bool>, tonic::Status> {
    match pb::L3Protocol::try_from(l3protocol) {
        Ok(pb::L3Protocol::Unspecified) => Ok(None),
        Ok(pb::L3Protocol::Ipv4) => Ok(Some(false)),
        Ok(pb::L3Protocol::Ipv6) => Ok(Some(true)),
        Err(_) => Err(tonic::Status::invalid_argument(format!("l3protocol: unknown value {l3protocol}"))),
    }
}

fn nanos_of(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

fn trace_state(kind: Option<ReplyKind>, v6: bool) -> pb::TracerouteState {
    match kind {
        None => pb::TracerouteState::None,
        Some(ReplyKind::EchoReply | ReplyKind::TimeExceeded) => pb::TracerouteState::Default,
        // ICMP (RFC 792) and ICMPv6 (RFC 4443) number their unreachable codes differently.
        Some(ReplyKind::Unreachable(code)) => match (v6, code) {
            (false, 0) | (true, 0) => pb::TracerouteState::NetworkUnreachable,
            (false, 1) | (true, 3) => pb::TracerouteState::HostUnreachable,
            (false, 2) => pb::TracerouteState::ProtocolUnreachable,
            (false, 4) => pb::TracerouteState::FragmentationNeeded,
            (false, 5) => pb::TracerouteState::SourceRouteFailed,
            (false, 9 | 10 | 13) | (true, 1) => pb::TracerouteState::Prohibited,
            (false, 14) => pb::TracerouteState::PrecedenceViolation,
            (false, 15) => pb::TracerouteState::PrecedenceCutoff,
            _ => pb::TracerouteState::Icmp,
        },
    }
}

type ResponseStream<T> = tonic::codegen::BoxStream<T>;

#[tonic::async_trait]
impl DiagnosticsService for DiagnosticsApi {
    async fn run_diagnostics(
        &self,
        _request: tonic::Request<pb::RunDiagnosticsRequest>,
    ) -> Result<tonic::Response<ResponseStream<pb::RunDiagnosticsResponse>>, tonic::Status> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let diagnostics = self.diagnostics.clone();
        tokio::spawn(async move {
            diagnostics
                .evaluate(|node| {
                    let _ = sender.send(Ok(pb::RunDiagnosticsResponse { node: Some(node_to_proto(node)) }));
                })
                .await;
        });
        Ok(tonic::Response::new(Box::pin(tokio_stream::wrappers::UnboundedReceiverStream::new(receiver))))
    }

    async fn get_health(
        &self,
        _request: tonic::Request<pb::GetHealthRequest>,
    ) -> Result<tonic::Response<pb::GetHealthResponse>, tonic::Status> {
        let report = self.diagnostics.evaluate(|_| {}).await;
        Ok(tonic::Response::new(pb::GetHealthResponse {
            healthy: report.healthy(),
            failed: report.failed().map(|n| n.id.clone()).collect(),
            summary: report.summary(),
        }))
    }

    async fn ping(
        &self,
        request: tonic::Request<pb::PingRequest>,
    ) -> Result<tonic::Response<ResponseStream<pb::PingResponse>>, tonic::Status> {
        let request = request.into_inner();
        let size = match request.size {
            0 => 56,
            n @ 1..=65000 => n as usize,
            n => return Err(tonic::Status::invalid_argument(format!("size: {n} is outside 1–65000 bytes"))),
        };
        let count = match request.count {
            0 => Some(5),
            n if n < 0 => None,
            n => Some(n as u32),
        };
        let interval = nanos("interval", request.interval, Duration::from_secs(1), Duration::from_secs(60))?;
        let wait = nanos("wait", request.wait, Duration::from_secs(2), Duration::from_secs(60))?;
        let destination = self.destination("pings", &request.source, &request.destination, request.l3protocol).await?;
        let options = PingOptions { destination, count, interval, wait, size };
        let to_response = move |event| match event {
            PingEvent::Reply { from, sequence, ttl, bytes, rtt } => pb::PingResponse {
                source: from.to_string(),
                time: nanos_of(rtt),
                bytes: bytes as i32,
                sequence: i32::from(sequence),
                ttl: i32::from(ttl),
                ..Default::default()
            },
            PingEvent::Summary(summary) => pb::PingResponse {
                source: destination.to_string(),
                sent: summary.sent as i32,
                received: summary.received as i32,
                min_time: nanos_of(summary.min),
                avg_time: nanos_of(summary.avg),
                max_time: nanos_of(summary.max),
                std_dev: nanos_of(summary.std_dev),
                ..Default::default()
            },
        };
        Ok(tonic::Response::new(relay(
            None,
            |events| ping::ping(options, events),
            to_response,
            format!("pinging {destination}"),
        )))
    }

    async fn traceroute(
        &self,
        request: tonic::Request<pb::TracerouteRequest>,
    ) -> Result<tonic::Response<ResponseStream<pb::TracerouteResponse>>, tonic::Status> {
        let request = request.into_inner();
        match pb::L4Protocol::try_from(request.l4protocol) {
            Ok(pb::L4Protocol::Unspecified | pb::L4Protocol::Icmp) => {}
            _ => return Err(tonic::Status::unimplemented("l4protocol: only ICMP probes are built")),
        }
        let max_ttl = match request.max_ttl {
            0 => 30,
            n @ 1..=255 => n as u8,
            n => return Err(tonic::Status::invalid_argument(format!("max_ttl: {n} is outside 1–255"))),
        };
        let initial_ttl = u8::try_from(request.initial_ttl.max(1))
            .ok()
            .filter(|ttl| *ttl <= max_ttl)
            .ok_or_else(|| tonic::Status::invalid_argument("initial_ttl: must be between 1 and max_ttl"))?;
        let wait = nanos("wait", request.wait, Duration::from_secs(2), Duration::from_secs(60))?;
        let destination = self.destination("probes", &request.source, &request.destination, request.l3protocol).await?;
        let size = 32;
        let options = TraceOptions { destination, initial_ttl, max_ttl, wait, probes_per_hop: 3, size };
        let first = pb::TracerouteResponse {
            destination_name: request.destination.clone(),
            destination_address: destination.to_string(),
            hops: i32::from(max_ttl),
            packet_size: size as i32 + 8,
            ..Default::default()
        };
        let to_response = move |hop: Hop| pb::TracerouteResponse {
            hop: i32::from(hop.hop),
            address: hop.from.map(|a| a.to_string()).unwrap_or_default(),
            rtt: nanos_of(hop.rtt),
            state: trace_state(hop.kind, destination.is_ipv6()) as i32,
            ..Default::default()
        };
        let producer = |hops| ping::traceroute(options, hops);
        Ok(tonic::Response::new(relay(Some(first), producer, to_response, format!("tracing {destination}"))))
    }
}

/// Streams what `producer` reports, each event as a response (after `first`, if given). The producer stops
/// when the client goes away; its error ends the stream with INTERNAL.
fn relay<E, R, F>(
    first: Option<R>,
    producer: impl FnOnce(mpsc::Sender<E>) -> F,
    to_response: impl Fn(E) -> R + Send + 'static,
    what: String,
) -> ResponseStream<R>
where
    E: Send + 'static,
    R: Send + 'static,
    F: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    let (events, mut received) = mpsc::channel(16);
    let (sender, receiver) = mpsc::channel(16);
    let producing = tokio::spawn(producer(events));
    tokio::spawn(async move {
        if let Some(first) = first
            && sender.send(Ok(first)).await.is_err()
        {
            producing.abort();
            return;
        }
        while let Some(event) = received.recv().await {
            if sender.send(Ok(to_response(event))).await.is_err() {
                break;
            }
        }
        drop(received);
        if let Ok(Err(error)) = producing.await {
            let _ = sender.send(Err(tonic::Status::internal(format!("{what}: {error}")))).await;
        }
    });
    Box::pin(ReceiverStream::new(receiver))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_durations_default_and_refuse_nonsense() {
        let second = Duration::from_secs(1);
        assert_eq!(nanos("wait", 0, second, Duration::from_secs(60)).expect("default"), second);
        assert_eq!(nanos("wait", 5_000_000, second, Duration::from_secs(60)).expect("given"), Duration::from_millis(5));
        for bad in [-1, 61_000_000_000] {
            let error = nanos("wait", bad, second, Duration::from_secs(60)).expect_err("refused");
            assert_eq!(error.code(), tonic::Code::InvalidArgument);
            assert!(error.message().starts_with("wait:"), "{}", error.message());
        }
    }

    #[test]
    fn unreachable_codes_map_per_family() {
        assert_eq!(trace_state(Some(ReplyKind::Unreachable(1)), false), pb::TracerouteState::HostUnreachable);
        assert_eq!(trace_state(Some(ReplyKind::Unreachable(3)), true), pb::TracerouteState::HostUnreachable);
        assert_eq!(trace_state(Some(ReplyKind::Unreachable(1)), true), pb::TracerouteState::Prohibited);
        assert_eq!(trace_state(None, false), pb::TracerouteState::None);
        assert_eq!(trace_state(Some(ReplyKind::TimeExceeded), false), pb::TracerouteState::Default);
    }
}
