//! The capture service: configuration traffic on the uplink and every LAN, from packet sockets with the kernel
//! filter, into the ring that `CaptureService` readers stream from.

use std::{
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use tokio::task::JoinSet;

use super::ring::{Packet, Ring};
use crate::{
    bpf,
    netconfig::Netconfig,
    packet_socket::PacketSocket,
    supervisor::{ServiceContext, ServiceError, ServiceState},
};

/// What the API reads: the ring, and the interfaces in the order packets refer to them.
#[derive(Clone)]
pub struct CaptureHub {
    pub ring: Arc<Mutex<Ring>>,
    pub interfaces: Arc<Vec<String>>,
}

impl CaptureHub {
    pub fn new(interfaces: Vec<String>, capacity: usize) -> CaptureHub {
        CaptureHub { ring: Arc::new(Mutex::new(Ring::new(capacity))), interfaces: Arc::new(interfaces) }
    }
}

/// How soon DNS joins the capture once a reader connects, and leaves it once the last one is gone.
const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// `dns_history`: keep DNS in the ring at all times; otherwise DNS is captured only while a live reader is
/// connected, so that a busy LAN's queries neither push the DHCP and ND history out of the ring nor cost a copy
/// each when nobody watches.
pub(crate) async fn run(
    hub: CaptureHub,
    netconfig: Netconfig,
    dns_history: bool,
    mut context: ServiceContext,
) -> Result<(), ServiceError> {
    let with_dns = bpf::configuration_traffic(true).assemble()?;
    let without_dns = bpf::configuration_traffic(false).assemble()?;
    let mut readers = JoinSet::new();
    let mut sockets = Vec::new();
    for (index, name) in hub.interfaces.iter().enumerate() {
        let ifindex = netconfig.link_index(name).await?;
        let socket = Arc::new(PacketSocket::frames(ifindex, if dns_history { &with_dns } else { &without_dns })?);
        sockets.push(socket.clone());
        let ring = hub.ring.clone();
        let interface = index as u32;
        readers.spawn(async move {
            let mut buffer = vec![0u8; 65536];
            loop {
                let Ok(len) = socket.recv(&mut buffer).await else { return };
                let micros = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
                let packet = Packet { interface, micros, frame: Arc::from(&buffer[..len]), original_length: len };
                ring.lock().unwrap_or_else(|p| p.into_inner()).push(packet);
            }
        });
    }
    context.report(ServiceState::Running, format!("capturing on {}", hub.interfaces.join(", ")));
    let mut capturing_dns = dns_history;
    let mut watch = tokio::time::interval(WATCH_INTERVAL);
    loop {
        tokio::select! {
            _ = context.shutdown.wait() => return Ok(()),
            Some(done) = readers.join_next() => return Err(format!("a capture socket stopped: {done:?}").into()),
            _ = watch.tick(), if !dns_history => {
                let watched = hub.ring.lock().unwrap_or_else(|p| p.into_inner()).has_live_readers();
                if watched != capturing_dns {
                    for socket in &sockets {
                        socket.set_filter(if watched { &with_dns } else { &without_dns })?;
                    }
                    capturing_dns = watched;
                    tracing::debug!("DNS {} the capture", if watched { "joins" } else { "leaves" });
                }
            }
        }
    }
}
