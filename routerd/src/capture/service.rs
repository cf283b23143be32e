//! The capture service: configuration traffic on the uplink and every LAN, from packet sockets with the kernel
//! filter, into the ring that `CaptureService` readers stream from.

use std::{
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use tokio::task::JoinSet;

use super::{
    bpf,
    ring::{Packet, Ring},
};
use crate::{
    netconfig::Netconfig,
    supervisor::{ServiceContext, ServiceError, ServiceState},
    uplink::packet_socket::PacketSocket,
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

pub async fn run(hub: CaptureHub, netconfig: Netconfig, mut context: ServiceContext) -> Result<(), ServiceError> {
    let filter = bpf::configuration_traffic().assemble()?;
    let mut readers = JoinSet::new();
    for (index, name) in hub.interfaces.iter().enumerate() {
        let ifindex = netconfig.link_index(name).await?;
        let socket = PacketSocket::frames(ifindex, &filter)?;
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
    tokio::select! {
        _ = context.shutdown.wait() => Ok(()),
        Some(done) = readers.join_next() => Err(format!("a capture socket stopped: {done:?}").into()),
    }
}
