//! The DHCPv6 client service: runs the state machine on UDP port 546 of the uplink, applies the IA_NA address
//! and the delegated prefix (one /64 per LAN), persists the lease, and publishes it. A saved lease is applied
//! before any server is asked. IPv6 duplicate address detection is waited out, not fatal: sends fail while the
//! link-local address is tentative, and the state machine retries.

use std::{
    net::{Ipv6Addr, SocketAddr, SocketAddrV6},
    path::PathBuf,
    time::Instant,
};

use tokio::{net::UdpSocket, sync::watch};

use super::{Client, ClientConfig, Event, Lease, LeaseTimes, State, duid, store};
use crate::{
    netconfig::Netconfig,
    supervisor::{ServiceContext, ServiceError, ServiceState},
    system,
    uplink::control::{Command, Inbox},
    uplink::{
        entropy::SystemEntropy,
        lease_times::wall_clock,
        state::{Dhcp6Status, UplinkSnapshot},
    },
};

const CLIENT_PORT: u16 = 546;
const SERVER_PORT: u16 = 547;
/// All_DHCP_Relay_Agents_and_Servers.
const ALL_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
/// The IA_PD's IAID (router7 uses 1 as well).
const IA_PD_IAID: u32 = 1;

#[derive(Clone, Debug)]
pub struct Dhcp6Options {
    pub perm: PathBuf,
    pub uplink: String,
    pub hardware_addr: Option<[u8; 6]>,
}

pub async fn run(
    options: Dhcp6Options,
    netconfig: Netconfig,
    uplink: watch::Sender<UplinkSnapshot>,
    inbox: Inbox,
    mut context: ServiceContext,
) -> Result<(), ServiceError> {
    let index = netconfig.link_index(&options.uplink).await?;
    let mac = netconfig.ethernet_addr(&options.uplink, options.hardware_addr).await?;
    let duid = duid::load_or_create(&options.perm, mac)?;
    let ia_na = u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]);

    let saved = match store::load(&options.perm) {
        Ok(saved) => saved,
        Err(problem) => {
            tracing::warn!("{problem}; asking the ISP again");
            None
        }
    };
    let mut applied: Option<Lease> = None;
    if let Some(lease) = &saved {
        tracing::info!("applying the saved DHCPv6 lease ({}) before asking the ISP", describe(lease));
        match apply(&netconfig, &options.uplink, lease, None).await {
            Ok(()) => applied = Some(lease.clone()),
            Err(error) => tracing::warn!("applying the saved DHCPv6 lease: {error}"),
        }
        publish(&uplink, "restored", lease, None);
    }

    // Enabling forwarding made the kernel drop the default route it had learned from the ISP's RA; ask for an RA
    // now instead of waiting for the next unsolicited one (up to several minutes with real ISPs).
    if let Err(error) = send_router_solicitation(&options.uplink, index) {
        tracing::info!("sending a router solicitation on {}: {error}; waiting for the next RA", options.uplink);
    }
    let socket = client_socket(&options.uplink, index)?;
    let destination = SocketAddr::V6(SocketAddrV6::new(ALL_SERVERS, SERVER_PORT, 0, index));
    let config = ClientConfig { duid, ia_na: Some(ia_na), ia_pd: Some(IA_PD_IAID) };
    let mut client = Client::new(config, Box::new(SystemEntropy::default()), saved, Instant::now());
    context.report(ServiceState::Running, format!("on {}", options.uplink));
    let mut last_state = client.state();
    let mut buffer = vec![0u8; 4096];
    loop {
        let wake = client.next_wakeup();
        let events = tokio::select! {
            _ = context.shutdown.wait() => return Ok(()),
            _ = tokio::time::sleep_until(wake.into()) => client.handle_timeout(Instant::now()),
            request = crate::command_channel::next(&inbox) => {
                let Some(request) = request else { continue };
                let answer = match request.command {
                    Command::Release => {
                        for event in client.release(Instant::now()) {
                            if let Event::Send(transmit) = event
                                && let Err(error) = socket.send_to(&transmit.payload, destination).await
                            {
                                tracing::warn!("sending the Release: {error}");
                            }
                        }
                        let answer = match applied.take() {
                            Some(lease) => {
                                if let Err(error) = unapply(&netconfig, &options.uplink, &lease).await {
                                    tracing::error!("removing the released addresses: {error}");
                                }
                                format!("released {}", describe(&lease))
                            }
                            None => "no lease to release".to_string(),
                        };
                        if let Err(error) = store::remove(&options.perm) {
                            tracing::error!("forgetting the saved DHCPv6 lease: {error}");
                        }
                        uplink.send_modify(|s| {
                            s.dhcp6 = None;
                            s.ipv6_unavailable = Some("the DHCPv6 lease was released on request".to_string());
                        });
                        tracing::info!("{answer} (on request); not asking again until renewed");
                        answer
                    }
                    Command::Renew => {
                        client.restart(Instant::now());
                        "asking the ISP for an address and a prefix now".to_string()
                    }
                };
                let _ = request.reply.send(answer);
                continue;
            }
            received = socket.recv_from(&mut buffer) => {
                let (len, from) = received?;
                if let Err(reason) = check_source(from) {
                    tracing::info!("ignored a DHCPv6 message from {from}: {reason}");
                    continue;
                }
                match client.handle_packet(Instant::now(), &buffer[..len]) {
                    Ok(events) => events,
                    Err(ignored) => {
                        tracing::debug!("ignored a DHCPv6 message from {from}: {ignored}");
                        continue;
                    }
                }
            }
        };
        for event in events {
            match event {
                Event::Send(transmit) => {
                    tracing::debug!("sending {} ({})", transmit.message_type, client.state().name());
                    if let Err(error) = socket.send_to(&transmit.payload, destination).await {
                        // EADDRNOTAVAIL while the link-local address is still tentative (DAD): retried later.
                        tracing::info!("sending {} on {}: {error}; will retry", transmit.message_type, options.uplink);
                    }
                }
                Event::Bound(lease) => {
                    let Some((_, times)) = client.lease() else { continue };
                    let changed = !applied.as_ref().is_some_and(|a| a.same_configuration(&lease));
                    tracing::info!(
                        "DHCPv6 lease: {}, renew in {} s, rebind in {} s{}",
                        describe(&lease),
                        lease.t1.as_secs(),
                        lease.t2.as_secs(),
                        if changed { "" } else { " (unchanged)" }
                    );
                    if let Err(error) = store::save(&options.perm, &lease, times) {
                        tracing::error!("saving the DHCPv6 lease: {error}");
                    }
                    if changed {
                        match apply(&netconfig, &options.uplink, &lease, applied.as_ref()).await {
                            Ok(()) => applied = Some(lease.clone()),
                            Err(error) => tracing::error!("applying the DHCPv6 lease: {error}"),
                        }
                    }
                    publish(&uplink, client.state().name(), &lease, Some(times));
                }
                Event::Problem(problem) => {
                    tracing::warn!("DHCPv6: {problem}; asking again");
                    if applied.is_none() {
                        uplink
                            .send_modify(|s| s.ipv6_unavailable = Some(format!("the ISP's DHCPv6 server: {problem}")));
                    }
                }
                Event::Expired => {
                    tracing::warn!(
                        "the DHCPv6 lease expired without an answer; keeping its configuration and asking again"
                    );
                    if let Some((lease, times)) = client.lease() {
                        publish(&uplink, "expired (configuration kept)", lease, Some(times));
                    }
                }
            }
        }
        if client.state() != last_state {
            last_state = client.state();
            match last_state {
                State::Renewing => tracing::info!("DHCPv6 T1 reached: renewing with the server that granted the lease"),
                State::Rebinding => tracing::warn!("DHCPv6 T2 reached without an answer: rebinding with any server"),
                _ => {}
            }
            if let Some((lease, times)) = client.lease()
                && uplink.borrow().dhcp6.as_ref().is_some_and(|s| !s.state.starts_with("expired"))
            {
                publish(&uplink, last_state.name(), lease, Some(times));
            }
        }
    }
}

fn describe(lease: &Lease) -> String {
    let prefixes: Vec<String> = lease.prefixes.iter().map(|p| p.cidr()).collect();
    format!(
        "address {}, prefix {}, DNS {:?}",
        lease.address.as_ref().map(|a| a.address.to_string()).unwrap_or_else(|| "none".into()),
        if prefixes.is_empty() { "none".to_string() } else { prefixes.join(" ") },
        lease.dns
    )
}

async fn apply(
    netconfig: &Netconfig,
    uplink: &str,
    lease: &Lease,
    previous: Option<&Lease>,
) -> Result<(), crate::netconfig::NetconfigError> {
    let address = lease.address.as_ref().map(|a| a.address);
    let previous_address = previous.and_then(|p| p.address.as_ref().map(|a| a.address));
    netconfig.apply_dhcp6_address(uplink, address, previous_address).await?;
    let lans = system::lan_interfaces();
    let assigned =
        netconfig.apply_prefix(&lans, lease.prefixes.first(), previous.and_then(|p| p.prefixes.first())).await?;
    for (name, address) in assigned {
        tracing::info!("{name}: {address}/64 from the delegated prefix");
    }
    Ok(())
}

/// One ICMPv6 Router Solicitation (RFC 4861 §4.1) to all routers on the uplink; the kernel fills in the checksum.
fn send_router_solicitation(uplink: &str, index: u32) -> std::io::Result<()> {
    const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
    let socket = crate::sys::icmpv6::neighbor_discovery_socket(uplink, index)?;
    let solicitation = [133u8, 0, 0, 0, 0, 0, 0, 0];
    socket.send_to(&solicitation, &SocketAddr::V6(SocketAddrV6::new(ALL_ROUTERS, 0, 0, index)).into())?;
    Ok(())
}

/// Removes what a released lease configured: the uplink address and the LANs' /64s.
async fn unapply(netconfig: &Netconfig, uplink: &str, lease: &Lease) -> Result<(), crate::netconfig::NetconfigError> {
    netconfig.apply_dhcp6_address(uplink, None, lease.address.as_ref().map(|a| a.address)).await?;
    netconfig.apply_prefix(&system::lan_interfaces(), None, lease.prefixes.first()).await?;
    Ok(())
}

fn client_socket(uplink: &str, index: u32) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_only_v6(true)?;
    socket.set_reuse_address(true)?;
    socket.bind_device(Some(uplink.as_bytes()))?;
    socket.set_multicast_if_v6(index)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, CLIENT_PORT, 0, 0)).into())?;
    UdpSocket::from_std(socket.into())
}

fn publish(uplink: &watch::Sender<UplinkSnapshot>, state: &str, lease: &Lease, times: Option<LeaseTimes>) {
    uplink.send_modify(|snapshot| {
        snapshot.ipv6_unavailable = lease
            .prefixes
            .is_empty()
            .then(|| "the ISP delegated no prefix (DHCPv6 gave no IA_PD): the LANs get no IPv6".to_string());
        snapshot.dhcp6 = Some(Dhcp6Status {
            state: state.to_string(),
            lease: lease.clone(),
            bound_at: times.map(|t| wall_clock(t.bound_at)),
            renew_at: times.map(|t| wall_clock(t.renew_at)),
            rebind_at: times.map(|t| wall_clock(t.rebind_at)),
            expires_at: times.map(|t| wall_clock(t.expires_at)),
        });
    });
}

/// DHCPv6 servers and relays answer from a link-local address and port 547 (RFC 8415 §13.1, §18.2.10): anything
/// else on the uplink is spoofed or misrouted, and is dropped here whatever the firewall lets through.
pub fn check_source(from: SocketAddr) -> Result<(), String> {
    match from {
        SocketAddr::V6(from) if !from.ip().is_unicast_link_local() => {
            Err(format!("{} is not a link-local address", from.ip()))
        }
        SocketAddr::V6(from) if from.port() != SERVER_PORT => {
            Err(format!("source port {} is not the DHCPv6 server port {SERVER_PORT}", from.port()))
        }
        SocketAddr::V6(_) => Ok(()),
        SocketAddr::V4(from) => Err(format!("{from} is not IPv6")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_link_local_sources_on_the_server_port_are_accepted() {
        let at = |text: &str| -> SocketAddr { text.parse().expect("literal") };
        assert_eq!(check_source(at("[fe80::1%2]:547")), Ok(()));
        assert!(check_source(at("[2001:db8::1]:547")).is_err_and(|e| e.contains("not a link-local")));
        assert!(check_source(at("[::1]:547")).is_err());
        assert!(check_source(at("[fe80::1]:5547")).is_err_and(|e| e.contains("source port 5547")));
        assert!(check_source(at("198.51.100.1:547")).is_err());
    }
}
