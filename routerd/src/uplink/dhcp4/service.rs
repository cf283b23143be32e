//! The DHCPv4 client service: runs the state machine on the uplink's sockets, applies leases with netconfig,
//! persists them, and publishes them. Before talking to any server it applies the saved lease (router7's
//! promise: a router keeps working through a reboot while the ISP's DHCP server is down).

use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    path::PathBuf,
    time::Instant,
};

use tokio::sync::watch;

use super::{Client, ClientConfig, Destination, Event, Lease, State, store};
use crate::{
    netconfig::Netconfig,
    supervisor::{ServiceContext, ServiceError, ServiceState},
    uplink::control::{Command, Inbox},
    uplink::{
        entropy::SystemEntropy,
        ipv4_udp,
        lease_times::wall_clock,
        packet_socket::PacketSocket,
        state::{Dhcp4Status, UplinkSnapshot},
    },
};

const CLIENT_PORT: u16 = 68;
const SERVER_PORT: u16 = 67;

#[derive(Clone, Debug)]
pub struct Dhcp4Options {
    pub perm: PathBuf,
    pub uplink: String,
    pub hostname: Option<String>,
    /// `spoof_hardware_addr` from interfaces.json: the MAC the ISP knows, when it is not the NIC's own.
    pub hardware_addr: Option<[u8; 6]>,
}

pub async fn run(
    options: Dhcp4Options,
    netconfig: Netconfig,
    uplink: watch::Sender<UplinkSnapshot>,
    inbox: Inbox,
    mut context: ServiceContext,
) -> Result<(), ServiceError> {
    let index = netconfig.link_index(&options.uplink).await?;
    netconfig.set_up(index).await?;
    let hardware_addr = netconfig.ethernet_addr(&options.uplink, options.hardware_addr).await?;

    let saved = match store::load(&options.perm) {
        Ok(saved) => saved,
        Err(problem) => {
            tracing::warn!("{problem}; asking the ISP for a new lease");
            None
        }
    };
    let mut applied: Option<Lease> = None;
    if let Some(lease) = &saved {
        tracing::info!("applying the saved lease {}/{} before asking the ISP", lease.address, lease.prefix_len);
        match netconfig.apply_dhcp4(&options.uplink, lease, None).await {
            Ok(()) => applied = Some(lease.clone()),
            Err(error) => tracing::warn!("applying the saved lease: {error}"),
        }
        publish_restored(&uplink, lease);
    }

    let packets = PacketSocket::udp_port(index, CLIENT_PORT)?;
    let socket = crate::device_socket::udp_v4(&options.uplink, CLIENT_PORT)?;
    let config = ClientConfig { hardware_addr, hostname: options.hostname.clone() };
    let mut client = Client::new(config, Box::new(SystemEntropy::default()), saved, Instant::now());
    context.report(ServiceState::Running, format!("on {}", options.uplink));

    let mut last_state = client.state();
    let mut buffer = vec![0u8; 4096];
    let mut drain = vec![0u8; 1500];
    loop {
        let wake = client.next_wakeup();
        let (events, payload) = tokio::select! {
            _ = context.shutdown.wait() => return Ok(()),
            _ = tokio::time::sleep_until(wake.into()) => (client.handle_timeout(Instant::now()), None),
            received = packets.recv(&mut buffer) => {
                let len = received?;
                match ipv4_udp::parse(&buffer[..len]) {
                    Ok(datagram) if datagram.destination_port == CLIENT_PORT => {
                        match client.handle_packet(Instant::now(), datagram.payload) {
                            Ok(events) => (events, Some(datagram.payload.to_vec())),
                            Err(ignored) => {
                                tracing::debug!("ignored a packet from {}: {ignored}", datagram.source);
                                continue;
                            }
                        }
                    }
                    Ok(_) => continue,
                    Err(error) => {
                        tracing::debug!("ignored a malformed packet: {error}");
                        continue;
                    }
                }
            }
            request = crate::command_channel::next(&inbox) => {
                let Some(request) = request else { continue };
                let answer = match request.command {
                    Command::Release => {
                        let server = client.lease().and_then(|(lease, _)| lease.server_id);
                        for event in client.release(Instant::now()) {
                            if let Event::Send(transmit) = event {
                                let to = match transmit.destination {
                                    Destination::Unicast(server) => server,
                                    Destination::Broadcast => Ipv4Addr::BROADCAST,
                                };
                                let target = SocketAddr::V4(SocketAddrV4::new(to, SERVER_PORT));
                                if let Err(error) = socket.send_to(&transmit.payload, target).await {
                                    tracing::warn!("sending the RELEASE to {to}: {error}");
                                }
                            }
                        }
                        let answer = match applied.take() {
                            Some(lease) => {
                                if let Err(error) = netconfig.remove_dhcp4(&options.uplink, &lease).await {
                                    tracing::error!("removing the released address: {error}");
                                }
                                let to = server.map(|s| s.to_string()).unwrap_or_else(|| "the ISP".into());
                                format!("released {}/{} to {to}", lease.address, lease.prefix_len)
                            }
                            None => "no lease to release".to_string(),
                        };
                        if let Err(error) = store::remove(&options.perm) {
                            tracing::error!("forgetting the saved lease: {error}");
                        }
                        uplink.send_modify(|s| s.dhcp4 = None);
                        tracing::info!("{answer} (on request); not asking again until renewed");
                        answer
                    }
                    Command::Renew => {
                        client.restart(Instant::now());
                        tracing::info!("starting over on request");
                        "asking the ISP for a lease now".to_string()
                    }
                };
                let _ = request.reply.send(answer);
                continue;
            }
            // Unicast replies also reach the UDP socket, which exists so the kernel does not answer them with
            // ICMP port unreachable; the packet socket has already seen them.
            _ = socket.recv_from(&mut drain) => continue,
        };
        for event in events {
            match event {
                Event::Send(transmit)
                    if transmit.source.is_unspecified() && transmit.destination == Destination::Broadcast =>
                {
                    // No address yet (or not used): from 0.0.0.0, built by hand on the packet socket.
                    tracing::debug!("sending {:?} from 0.0.0.0 ({})", transmit.message_type, client.state().name());
                    if let Err(error) =
                        packets.send_broadcast_udp(index, CLIENT_PORT, SERVER_PORT, &transmit.payload).await
                    {
                        tracing::warn!("broadcasting {:?}: {error}", transmit.message_type);
                    }
                }
                Event::Send(transmit) => {
                    let destination = match transmit.destination {
                        Destination::Broadcast => Ipv4Addr::BROADCAST,
                        Destination::Unicast(server) => server,
                    };
                    let target = SocketAddr::V4(SocketAddrV4::new(destination, SERVER_PORT));
                    tracing::debug!("sending {:?} to {destination} ({})", transmit.message_type, client.state().name());
                    if let Err(error) = socket.send_to(&transmit.payload, target).await {
                        // Often "network unreachable" while the link is down: the state machine retries anyway.
                        tracing::warn!("sending {:?} to {destination}: {error}", transmit.message_type);
                    }
                }
                Event::Bound(lease) => {
                    let Some((_, times)) = client.lease() else { continue };
                    let changed = !applied.as_ref().is_some_and(|a| a.same_configuration(&lease));
                    tracing::info!(
                        "lease {}/{} from {} (gateway {}, DNS {:?}), renew in {} s, expires in {} s{}",
                        lease.address,
                        lease.prefix_len,
                        lease.server_id.map(|s| s.to_string()).unwrap_or_else(|| "?".into()),
                        lease.gateway.map(|g| g.to_string()).unwrap_or_else(|| "none".into()),
                        lease.dns,
                        lease.t1.as_secs(),
                        lease.lease_time.as_secs(),
                        if changed { "" } else { " (unchanged)" }
                    );
                    if let Some(ack) = &payload
                        && let Err(error) = store::save(&options.perm, ack, &lease, times)
                    {
                        tracing::error!("saving the lease: {error}");
                    }
                    if changed || applied.is_none() {
                        match netconfig.apply_dhcp4(&options.uplink, &lease, applied.as_ref()).await {
                            Ok(()) => applied = Some(lease.clone()),
                            Err(error) => tracing::error!("applying the lease: {error}"),
                        }
                    }
                    publish_times(&uplink, client.state().name(), &lease, times);
                }
                Event::Nak { server, message } => {
                    let server = server.map(|s| s.to_string()).unwrap_or_else(|| "a server".into());
                    tracing::warn!(
                        "{server} refused our request ({message:?}); starting over, keeping the current configuration"
                    );
                }
                Event::Expired => {
                    tracing::warn!(
                        "the lease expired without an answer from the ISP; keeping its configuration and asking again"
                    );
                    if let Some((lease, times)) = client.lease() {
                        publish_times(&uplink, "expired (configuration kept)", lease, times);
                    }
                }
            }
        }
        if client.state() != last_state {
            log_transition(last_state, client.state());
            last_state = client.state();
            // Renewing and rebinding are visible in the status too.
            if let Some((lease, times)) = client.lease()
                && uplink.borrow().dhcp4.as_ref().is_some_and(|s| !s.state.starts_with("expired"))
            {
                publish_times(&uplink, last_state.name(), lease, times);
            }
        }
    }
}

fn log_transition(from: State, to: State) {
    match to {
        State::Renewing => tracing::info!("T1 reached: renewing with the server that granted the lease"),
        State::Rebinding => tracing::warn!("T2 reached without an answer: rebinding with any server (broadcast)"),
        State::Selecting => tracing::info!("looking for a DHCP server (DISCOVER)"),
        State::Rebooting => tracing::info!("asking to keep the saved address (INIT-REBOOT)"),
        _ => tracing::debug!("{} → {}", from.name(), to.name()),
    }
}

/// A lease restored from disk: its timers belong to before the restart, so none are shown.
fn publish_restored(uplink: &watch::Sender<UplinkSnapshot>, lease: &Lease) {
    uplink.send_modify(|snapshot| {
        snapshot.dhcp4 = Some(Dhcp4Status {
            state: "restored".to_string(),
            lease: lease.clone(),
            bound_at: None,
            renew_at: None,
            rebind_at: None,
            expires_at: None,
        });
    });
}

fn publish_times(uplink: &watch::Sender<UplinkSnapshot>, state: &str, lease: &Lease, times: super::LeaseTimes) {
    uplink.send_modify(|snapshot| {
        snapshot.dhcp4 = Some(Dhcp4Status {
            state: state.to_string(),
            lease: lease.clone(),
            bound_at: Some(wall_clock(times.bound_at)),
            renew_at: Some(wall_clock(times.renew_at)),
            rebind_at: Some(wall_clock(times.rebind_at)),
            expires_at: Some(wall_clock(times.expires_at)),
        });
    });
}
