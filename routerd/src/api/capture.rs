//! CaptureService: pcapng of the ring's contents (backfill), then live packets, until the client stops.

use std::time::{SystemTime, UNIX_EPOCH};

use routerd_proto::v1::{self as pb, capture_service_server::CaptureService};

use crate::capture::{pcapng, ring::Packet, service::CaptureHub};

pub(super) struct CaptureApi {
    hub: Option<CaptureHub>,
}

impl CaptureApi {
    pub(super) fn new(hub: Option<CaptureHub>) -> Self {
        CaptureApi { hub }
    }
}

/// Which protocol a captured Ethernet frame carries (for the request's filter).
fn protocol_of(frame: &[u8]) -> Option<pb::CaptureProtocol> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let (next, transport) = match ethertype {
        0x0800 => (*frame.get(23)?, 14 + usize::from(frame.get(14)? & 0xf) * 4),
        0x86dd => (*frame.get(20)?, 54),
        _ => return None,
    };
    if next == 58 {
        return Some(pb::CaptureProtocol::Icmp6);
    }
    let port = |at: usize| Some(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]));
    let ports = [port(transport)?, port(transport + 2)?];
    if ports.iter().any(|p| *p == 67 || *p == 68) {
        Some(pb::CaptureProtocol::Dhcp4)
    } else if ports.iter().any(|p| *p == 546 || *p == 547) {
        Some(pb::CaptureProtocol::Dhcp6)
    } else if ports.contains(&53) {
        Some(pb::CaptureProtocol::Dns)
    } else {
        None
    }
}

fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

#[tonic::async_trait]
impl CaptureService for CaptureApi {
    async fn capture(
        &self,
        request: tonic::Request<pb::CaptureRequest>,
    ) -> Result<tonic::Response<tonic::codegen::BoxStream<pb::CaptureResponse>>, tonic::Status> {
        let hub = self.hub.clone().ok_or_else(|| {
            tonic::Status::failed_precondition("this router captures nothing (no uplink0 and no LAN interface)")
        })?;
        let request = request.into_inner();
        for name in &request.interfaces {
            if !hub.interfaces.contains(name) {
                return Err(tonic::Status::invalid_argument(format!(
                    "interfaces: {name:?} is not captured (captured: {})",
                    hub.interfaces.join(", ")
                )));
            }
        }
        let wanted_interfaces: Vec<u32> = (0..hub.interfaces.len() as u32)
            .filter(|i| request.interfaces.is_empty() || request.interfaces.contains(&hub.interfaces[*i as usize]))
            .collect();
        let protocols = request.protocols.clone();
        let keep = move |packet: &Packet| {
            wanted_interfaces.contains(&packet.interface)
                && (protocols.is_empty() || protocol_of(&packet.frame).is_some_and(|p| protocols.contains(&(p as i32))))
        };
        let mut reader = hub.ring.lock().unwrap_or_else(|p| p.into_inner()).reader(!request.skip_backfill);
        let (sender, receiver) = tokio::sync::mpsc::channel::<Result<pb::CaptureResponse, tonic::Status>>(64);
        let interfaces = hub.interfaces.clone();
        tokio::spawn(async move {
            let mut header = pcapng::section_header("routerd capture");
            for name in interfaces.iter() {
                header.extend(pcapng::interface_description(name));
            }
            if sender.send(Ok(pb::CaptureResponse { pcapng: header })).await.is_err() {
                return;
            }
            let block = |p: &Packet| pcapng::enhanced_packet(p.interface, p.micros, &p.frame, p.original_length);
            let mut chunk = Vec::new();
            for packet in std::mem::take(&mut reader.backfill).iter().filter(|p| keep(p)) {
                chunk.extend(block(packet));
                if chunk.len() > 64 * 1024
                    && sender.send(Ok(pb::CaptureResponse { pcapng: std::mem::take(&mut chunk) })).await.is_err()
                {
                    return;
                }
            }
            if !chunk.is_empty() && sender.send(Ok(pb::CaptureResponse { pcapng: chunk })).await.is_err() {
                return;
            }
            let mut reported = 0;
            loop {
                // A client that went away releases its reader at once, not at the next packet (while a reader
                // is connected, DNS is captured too).
                let packet = tokio::select! {
                    packet = reader.next() => match packet {
                        Some(packet) => packet,
                        None => return,
                    },
                    _ = sender.closed() => return,
                };
                let mut bytes = Vec::new();
                if reader.dropped() > reported {
                    // This reader fell behind: say how many it lost, on every interface.
                    reported = reader.dropped();
                    for index in 0..interfaces.len() as u32 {
                        bytes.extend(pcapng::interface_statistics(index, now_micros(), reported));
                    }
                }
                if keep(&packet) {
                    bytes.extend(block(&packet));
                }
                if !bytes.is_empty() && sender.send(Ok(pb::CaptureResponse { pcapng: bytes })).await.is_err() {
                    return;
                }
            }
        });
        Ok(tonic::Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver))))
    }
}
