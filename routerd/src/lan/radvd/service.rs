//! Sends router advertisements on the LANs when the [`Schedule`] says (three quickly after a start or a change,
//! then every few minutes, and in answer to router solicitations): the /64s netconfig applied to the LANs, with
//! the lifetimes of the lease they came from. The sockets and the clock are here; the decisions are in the
//! schedule.

use std::{
    net::{Ipv6Addr, SocketAddr, SocketAddrV6},
    sync::Arc,
};

use tokio::{
    net::UdpSocket,
    sync::{mpsc, watch},
};

use super::{
    advert::{Advert, ROUTER_SOLICITATION, parse_solicitation},
    schedule::{LanSchedule, Lifetimes, Schedule},
};
use crate::{
    netconfig::{Applied, Netconfig},
    supervisor::{ServiceContext, ServiceError, ServiceState},
    uplink::state::UplinkSnapshot,
};

const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// One LAN's socket and interface index.
struct LanSocket {
    index: u32,
    socket: Arc<UdpSocket>,
}

/// A raw ICMPv6 socket on `lan` that receives only router solicitations and sends with hop limit 255.
fn icmpv6_socket(lan: &str, index: u32) -> std::io::Result<UdpSocket> {
    let socket = crate::sys::icmpv6::neighbor_discovery_socket(lan, index)?;
    crate::sys::icmpv6::receive_only(&socket, ROUTER_SOLICITATION)?;
    socket.set_nonblocking(true)?;
    // tokio has no raw socket type; its UDP socket only does sendto/recvfrom on the descriptor, which is what a
    // raw ICMPv6 socket needs.
    UdpSocket::from_std(std::net::UdpSocket::from(socket))
}

pub(crate) async fn run(
    lans: Vec<(String, u32)>,
    netconfig: Netconfig,
    mut uplink: watch::Receiver<UplinkSnapshot>,
    mut context: ServiceContext,
) -> Result<(), ServiceError> {
    let mut applied = netconfig.applied();
    let mut sockets = Vec::new();
    let mut schedules = Vec::new();
    for (name, _) in lans {
        let index = netconfig.link_index(&name).await?;
        let mac = netconfig.ethernet_addr(&name, None).await.ok();
        sockets.push(LanSocket { index, socket: Arc::new(icmpv6_socket(&name, index)?) });
        schedules.push(LanSchedule::new(name, mac));
    }
    let (solicited, mut solicitations) = mpsc::channel::<(usize, ())>(64);
    let receivers: Vec<Arc<UdpSocket>> = sockets.iter().map(|lan| lan.socket.clone()).collect();
    let mut readers =
        crate::device_socket::Readers::spawn("router advertisements", &receivers, solicited, |payload, from| {
            match parse_solicitation(payload) {
                Ok(_) => Some(()),
                Err(error) => {
                    tracing::debug!("ignored an ICMPv6 message from {from}: {error}");
                    None
                }
            }
        });
    let names: Vec<&str> = schedules.iter().map(|l| l.name.as_str()).collect();
    context.report(ServiceState::Running, format!("on {}", names.join(", ")));

    let mut schedule = Schedule::new(schedules, crate::clock::instant());
    let mut lifetimes = lease_lifetimes(&uplink.borrow_and_update());
    schedule.set_prefixes(&applied.borrow_and_update().lan_prefixes, lifetimes, crate::clock::instant());
    loop {
        tokio::select! {
            _ = context.shutdown.wait() => return Ok(()),
            error = readers.ended() => return Err(error),
            changed = uplink.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                lifetimes = lease_lifetimes(&uplink.borrow_and_update());
                schedule.set_prefixes(&applied.borrow().lan_prefixes, lifetimes, crate::clock::instant());
            }
            changed = applied.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let assigned: Applied = applied.borrow_and_update().clone();
                schedule.set_prefixes(&assigned.lan_prefixes, lifetimes, crate::clock::instant());
            }
            Some((position, ())) = solicitations.recv() => {
                let now = crate::clock::instant();
                if let Some(advert) = schedule.solicited(position, now) {
                    send(&mut schedule, &sockets, position, &advert, now).await;
                }
            }
            _ = tokio::time::sleep_until(schedule.next_wakeup().into()) => {
                let now = crate::clock::instant();
                for (position, advert) in schedule.on_timeout(now) {
                    send(&mut schedule, &sockets, position, &advert, now).await;
                }
            }
        }
    }
}

/// The lifetimes of the delegated prefix the LANs' /64s come from (the lease's first).
fn lease_lifetimes(snapshot: &UplinkSnapshot) -> Option<Lifetimes> {
    let prefix = snapshot.dhcp6.as_ref()?.lease.prefixes.first()?;
    Some(Lifetimes { preferred: prefix.preferred, valid: prefix.valid })
}

async fn send(
    schedule: &mut Schedule,
    sockets: &[LanSocket],
    position: usize,
    advert: &Advert,
    now: std::time::Instant,
) {
    let Some(lan) = sockets.get(position) else { return };
    let target = SocketAddr::V6(SocketAddrV6::new(ALL_NODES, 0, 0, lan.index));
    match lan.socket.send_to(&advert.to_bytes(), target).await {
        Ok(_) => schedule.sent(position, now),
        // EADDRNOTAVAIL while the LAN's link-local address is tentative (DAD): the next round retries.
        Err(error) => {
            let name = schedule.lans.get(position).map_or("a LAN", |l| l.name.as_str());
            tracing::info!("{name}: sending a router advertisement: {error}");
        }
    }
}
