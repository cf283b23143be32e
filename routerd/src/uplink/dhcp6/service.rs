//! The DHCPv6 client service: UDP port 546 on the uplink ([`Dhcp6Link`]) and where a DHCPv6 lease takes
//! effect ([`Dhcp6Effects`]: `dhcp6/wire/lease.json`, the IA_NA address on the uplink, one /64 of the delegated
//! prefix per LAN, the snapshot); the generic [`Driver`] runs the client between them. IPv6 duplicate address
//! detection is waited out, not fatal: sends fail while the link-local address is tentative, and the client
//! retries.

use std::{
    net::{Ipv6Addr, SocketAddr, SocketAddrV6},
    path::PathBuf,
    time::Instant,
};

use tokio::{net::UdpSocket, sync::watch};

use super::{Client, ClientConfig, Lease, LeaseTimes, Transmit, duid, store};
use crate::{
    netconfig::Netconfig,
    supervisor::{ServiceContext, ServiceError, ServiceState},
    system,
    uplink::{
        control::Inbox,
        driver::{Driver, Effects, Link, Surroundings},
        entropy::SystemEntropy,
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
pub(crate) struct Dhcp6Options {
    pub perm: PathBuf,
    pub uplink: String,
    pub hardware_addr: Option<[u8; 6]>,
}

pub(crate) async fn run(
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

    let surroundings = Surroundings::new(&options.perm, &options.uplink, netconfig, uplink);
    let mut driver = Driver::new(Dhcp6Effects(surroundings));
    let saved = driver.restore(store::load(&options.perm)).await;

    // Enabling forwarding made the kernel drop the default route it had learned from the ISP's RA; ask for an RA
    // now instead of waiting for the next unsolicited one (up to several minutes with real ISPs).
    if let Err(error) = send_router_solicitation(&options.uplink, index) {
        tracing::info!("sending a router solicitation on {}: {error}; waiting for the next RA", options.uplink);
    }
    let link = Dhcp6Link {
        socket: client_socket(&options.uplink, index)?,
        destination: SocketAddr::V6(SocketAddrV6::new(ALL_SERVERS, SERVER_PORT, 0, index)),
        uplink_name: options.uplink.clone(),
        buffer: vec![0u8; 4096],
    };
    let config = ClientConfig { duid, ia_na: Some(ia_na), ia_pd: Some(IA_PD_IAID) };
    let client = Client::new(config, Box::new(SystemEntropy::default()), saved, Instant::now());
    context.report(ServiceState::Running, format!("on {}", options.uplink));
    driver.run(client, link, &inbox, &mut context.shutdown).await?;
    Ok(())
}

/// Every message goes to All_DHCP_Relay_Agents_and_Servers; only link-local servers on port 547 are heard.
pub(crate) struct Dhcp6Link {
    socket: UdpSocket,
    destination: SocketAddr,
    uplink_name: String,
    buffer: Vec<u8>,
}

impl Link for Dhcp6Link {
    type Transmit = Transmit;

    async fn send(&self, transmit: &Transmit) {
        tracing::debug!("sending {}", transmit.message_type);
        if let Err(error) = self.socket.send_to(&transmit.payload, self.destination).await {
            // EADDRNOTAVAIL while the link-local address is still tentative (DAD): retried later.
            tracing::info!("sending {} on {}: {error}; will retry", transmit.message_type, self.uplink_name);
        }
    }

    async fn receive(&mut self) -> std::io::Result<Vec<u8>> {
        loop {
            let (len, from) = self.socket.recv_from(&mut self.buffer).await?;
            match check_source(from) {
                Ok(()) => return Ok(self.buffer[..len].to_vec()),
                Err(reason) => tracing::info!("ignored a DHCPv6 message from {from}: {reason}"),
            }
        }
    }
}

/// A DHCPv6 lease's effects: saved in `dhcp6/wire/lease.json`, its address on the uplink and its prefix on the
/// LANs, published (with the reason when the LANs get no IPv6).
pub(crate) struct Dhcp6Effects(pub Surroundings);

impl Effects for Dhcp6Effects {
    type Lease = Lease;
    const FAMILY: &'static str = "DHCPv6";

    fn describe(lease: &Lease) -> String {
        describe(lease)
    }

    fn same_configuration(lease: &Lease, other: &Lease) -> bool {
        lease.same_configuration(other)
    }

    fn save(&mut self, lease: &Lease, times: LeaseTimes, _reply: Option<&[u8]>) {
        if let Err(error) = store::save(&self.0.perm, lease, times) {
            tracing::error!("saving the DHCPv6 lease: {error}");
        }
    }

    fn forget(&mut self) {
        if let Err(error) = store::remove(&self.0.perm) {
            tracing::error!("forgetting the saved DHCPv6 lease: {error}");
        }
    }

    async fn apply(&mut self, lease: &Lease, previous: Option<&Lease>) -> Result<(), String> {
        apply(&self.0.netconfig, &self.0.uplink_name, lease, previous).await.map_err(|e| e.to_string())
    }

    async fn remove(&mut self, lease: &Lease) -> Result<(), String> {
        unapply(&self.0.netconfig, &self.0.uplink_name, lease).await.map_err(|e| e.to_string())
    }

    fn publish(&mut self, status: Option<Dhcp6Status>) {
        self.0.uplink.send_modify(|snapshot| {
            snapshot.ipv6_unavailable = match &status {
                Some(status) if status.lease.prefixes.is_empty() => {
                    Some("the ISP delegated no prefix (DHCPv6 gave no IA_PD): the LANs get no IPv6".to_string())
                }
                Some(_) => None,
                None => Some("the DHCPv6 lease was released on request".to_string()),
            };
            snapshot.dhcp6 = status;
        });
    }

    fn refused(&mut self, reason: &str, configured: bool) {
        if !configured {
            self.0.uplink.send_modify(|s| s.ipv6_unavailable = Some(format!("the ISP's DHCPv6 server: {reason}")));
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
    let assigned = netconfig.apply_prefix(&lans, first_prefix(lease), previous.and_then(first_prefix)).await?;
    for lan in assigned {
        tracing::info!("{}: {}/64 from the delegated prefix", lan.lan, lan.router);
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
    netconfig.apply_prefix(&system::lan_interfaces(), None, first_prefix(lease)).await?;
    Ok(())
}

/// The LANs' /64s come from the first delegated prefix.
fn first_prefix(lease: &Lease) -> Option<crate::netconfig::Prefix> {
    lease.prefixes.first().map(super::DelegatedPrefix::network)
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

/// DHCPv6 servers and relays answer from a link-local address and port 547 (RFC 8415 §13.1, §18.2.10): anything
/// else on the uplink is spoofed or misrouted, and is dropped here whatever the firewall lets through.
pub(crate) fn check_source(from: SocketAddr) -> Result<(), String> {
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
