//! The DHCPv4 client service: the uplink's sockets for DHCPv4 ([`Dhcp4Link`]) and where a DHCPv4 lease takes
//! effect ([`Dhcp4Effects`]: `dhcp4/wire/`, the uplink's address and default route, the snapshot); the
//! generic [`Driver`] runs the client between them.

use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    path::PathBuf,
    time::Instant,
};

use tokio::{net::UdpSocket, sync::watch};

use super::{Client, ClientConfig, Destination, Lease, LeaseTimes, Transmit, store};
use crate::{
    netconfig::Netconfig,
    packet_socket::PacketSocket,
    supervisor::{ServiceContext, ServiceError, ServiceState},
    uplink::{
        control::Inbox,
        driver::{Driver, Effects, Link, Surroundings},
        entropy::SystemEntropy,
        ipv4_udp,
        state::{Dhcp4Status, UplinkSnapshot},
    },
};

const CLIENT_PORT: u16 = 68;
const SERVER_PORT: u16 = 67;

#[derive(Clone, Debug)]
pub(crate) struct Dhcp4Options {
    pub perm: PathBuf,
    pub uplink: String,
    pub hostname: Option<String>,
    /// `spoof_hardware_addr` from interfaces.json: the MAC the ISP knows, when it is not the NIC's own.
    pub hardware_addr: Option<[u8; 6]>,
}

pub(crate) async fn run(
    options: Dhcp4Options,
    netconfig: Netconfig,
    uplink: watch::Sender<UplinkSnapshot>,
    inbox: Inbox,
    mut context: ServiceContext,
) -> Result<(), ServiceError> {
    let index = netconfig.link_index(&options.uplink).await?;
    netconfig.set_up(index).await?;
    let hardware_addr = netconfig.ethernet_addr(&options.uplink, options.hardware_addr).await?;

    let surroundings = Surroundings::new(&options.perm, &options.uplink, netconfig, uplink);
    let mut driver = Driver::new(Dhcp4Effects(surroundings));
    let saved = driver.restore(store::load(&options.perm)).await;

    let link = Dhcp4Link {
        index,
        packets: PacketSocket::udp_port(index, CLIENT_PORT)?,
        socket: crate::device_socket::udp_v4(&options.uplink, CLIENT_PORT)?,
        buffer: vec![0u8; 4096],
        drain: vec![0u8; 1500],
    };
    let config = ClientConfig { hardware_addr, hostname: options.hostname.clone() };
    let client = Client::new(config, Box::new(SystemEntropy::default()), saved, Instant::now());
    context.report(ServiceState::Running, format!("on {}", options.uplink));
    driver.run(client, link, &inbox, &mut context.shutdown).await?;
    Ok(())
}

/// The packet socket sees every DHCPv4 packet to port 68 (also before the uplink has an address) and sends
/// from 0.0.0.0; the UDP socket sends once there is an address.
pub(crate) struct Dhcp4Link {
    index: u32,
    packets: PacketSocket,
    socket: UdpSocket,
    buffer: Vec<u8>,
    drain: Vec<u8>,
}

impl Link for Dhcp4Link {
    type Transmit = Transmit;

    async fn send(&self, transmit: &Transmit) {
        let kind = transmit.message_type;
        if transmit.source.is_unspecified() && transmit.destination == Destination::Broadcast {
            // No address yet (or not used): from 0.0.0.0, built by hand on the packet socket.
            tracing::debug!("sending {kind:?} from 0.0.0.0");
            if let Err(error) =
                self.packets.send_broadcast_udp(self.index, CLIENT_PORT, SERVER_PORT, &transmit.payload).await
            {
                tracing::warn!("broadcasting {kind:?}: {error}");
            }
            return;
        }
        let destination = match transmit.destination {
            Destination::Broadcast => Ipv4Addr::BROADCAST,
            Destination::Unicast(server) => server,
        };
        tracing::debug!("sending {kind:?} to {destination}");
        let target = SocketAddr::V4(SocketAddrV4::new(destination, SERVER_PORT));
        if let Err(error) = self.socket.send_to(&transmit.payload, target).await {
            // Often "network unreachable" while the link is down: the state machine retries anyway.
            tracing::warn!("sending {kind:?} to {destination}: {error}");
        }
    }

    async fn receive(&mut self) -> std::io::Result<Vec<u8>> {
        loop {
            tokio::select! {
                received = self.packets.recv(&mut self.buffer) => {
                    let len = received?;
                    match ipv4_udp::parse(&self.buffer[..len]) {
                        Ok(datagram) if datagram.destination_port == CLIENT_PORT => {
                            return Ok(datagram.payload.to_vec());
                        }
                        Ok(_) => {}
                        Err(error) => tracing::debug!("ignored a malformed packet: {error}"),
                    }
                }
                // Unicast replies also reach the UDP socket, which exists so the kernel does not answer them with
                // ICMP port unreachable; the packet socket has already seen them.
                _ = self.socket.recv_from(&mut self.drain) => {}
            }
        }
    }
}

/// A DHCPv4 lease's effects: saved with its ACK under `dhcp4/wire/`, applied to the uplink, published.
pub(crate) struct Dhcp4Effects(pub Surroundings);

impl Effects for Dhcp4Effects {
    type Lease = Lease;
    const FAMILY: &'static str = "DHCPv4";

    fn describe(lease: &Lease) -> String {
        format!(
            "{}/{} from {} (gateway {}, DNS {:?})",
            lease.address,
            lease.prefix_len,
            lease.server_id.map(|s| s.to_string()).unwrap_or_else(|| "?".into()),
            lease.gateway.map(|g| g.to_string()).unwrap_or_else(|| "none".into()),
            lease.dns,
        )
    }

    fn same_configuration(lease: &Lease, other: &Lease) -> bool {
        lease.same_configuration(other)
    }

    fn save(&mut self, lease: &Lease, times: LeaseTimes, reply: Option<&[u8]>) {
        let Some(ack) = reply else { return };
        if let Err(error) = store::save(&self.0.perm, ack, lease, times) {
            tracing::error!("saving the DHCPv4 lease: {error}");
        }
    }

    fn forget(&mut self) {
        if let Err(error) = store::remove(&self.0.perm) {
            tracing::error!("forgetting the saved DHCPv4 lease: {error}");
        }
    }

    async fn apply(&mut self, lease: &Lease, previous: Option<&Lease>) -> Result<(), String> {
        let (lease, previous) = (lease.ipv4_config(), previous.map(Lease::ipv4_config));
        self.0.netconfig.apply_dhcp4(&self.0.uplink_name, lease, previous).await.map_err(|e| e.to_string())
    }

    async fn remove(&mut self, lease: &Lease) -> Result<(), String> {
        self.0.netconfig.remove_dhcp4(&self.0.uplink_name, lease.address).await.map_err(|e| e.to_string())
    }

    fn publish(&mut self, status: Option<Dhcp4Status>) {
        self.0.uplink.send_modify(|snapshot| snapshot.dhcp4 = status);
    }

    fn refused(&mut self, _reason: &str, _configured: bool) {}
}
