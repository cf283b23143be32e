//! Sends router advertisements on the LANs: three quickly after a start or a change, then every few minutes,
//! and in answer to router solicitations (rate-limited). When the delegated prefix changes, the old /64 is
//! announced with a preferred lifetime of 0 for a while (RFC 9096), so devices move to the new one at once.

use std::{
    collections::BTreeMap,
    net::{Ipv6Addr, SocketAddr, SocketAddrV6},
    sync::Arc,
    time::Duration,
};

use tokio::{
    net::UdpSocket,
    sync::{mpsc, watch},
    time::Instant,
};

use super::advert::{Advert, AdvertisedPrefix, ROUTER_SOLICITATION, parse_solicitation};
use crate::{
    netconfig::{Netconfig, lan_subnet, router_address},
    supervisor::{ServiceContext, ServiceError, ServiceState},
    uplink::state::UplinkSnapshot,
};

const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const INITIAL_ADVERTS: u32 = 3;
const INITIAL_INTERVAL: Duration = Duration::from_secs(3);
const INTERVAL: Duration = Duration::from_secs(200);
/// RFC 4861 MIN_DELAY_BETWEEN_RAS.
const MIN_DELAY: Duration = Duration::from_secs(3);
/// How long a replaced prefix is still announced (deprecated).
const DEPRECATED_FOR: Duration = Duration::from_secs(2 * 3600);

struct Lan {
    name: String,
    number: u32,
    index: u32,
    mac: Option<[u8; 6]>,
    socket: Arc<UdpSocket>,
    /// The current /64 and its lifetimes.
    current: Option<AdvertisedPrefix>,
    /// Replaced /64s, announced with preferred lifetime 0 until the instant.
    deprecated: BTreeMap<Ipv6Addr, Instant>,
    last_sent: Option<Instant>,
}

impl Lan {
    fn advert(&self, now: Instant) -> Option<Advert> {
        let mut prefixes: Vec<AdvertisedPrefix> = self
            .deprecated
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(prefix, until)| AdvertisedPrefix { prefix: *prefix, valid: *until - now, preferred: Duration::ZERO })
            .collect();
        prefixes.extend(self.current.clone());
        if prefixes.is_empty() {
            return None;
        }
        let dns_servers = self.current.iter().map(|p| router_address(p.prefix)).collect();
        Some(Advert {
            router_lifetime: Duration::from_secs(1800),
            mtu: Some(1500),
            source_mac: self.mac,
            prefixes,
            dns_servers,
            search_domains: vec!["lan".to_string()],
            dns_lifetime: INTERVAL * 3,
        })
    }
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
    let mut sockets = Vec::new();
    for (name, number) in lans {
        let index = netconfig.link_index(&name).await?;
        let mac = netconfig.ethernet_addr(&name, None).await.ok();
        let socket = Arc::new(icmpv6_socket(&name, index)?);
        sockets.push(Lan {
            name,
            number,
            index,
            mac,
            socket,
            current: None,
            deprecated: BTreeMap::new(),
            last_sent: None,
        });
    }
    let mut lans = sockets;
    let (solicited, mut solicitations) = mpsc::channel::<(usize, ())>(64);
    let sockets: Vec<Arc<UdpSocket>> = lans.iter().map(|lan| lan.socket.clone()).collect();
    let mut readers =
        crate::device_socket::Readers::spawn("router advertisements", &sockets, solicited, |payload, from| {
            match parse_solicitation(payload) {
                Ok(_) => Some(()),
                Err(error) => {
                    tracing::debug!("ignored an ICMPv6 message from {from}: {error}");
                    None
                }
            }
        });
    let names: Vec<&str> = lans.iter().map(|l| l.name.as_str()).collect();
    context.report(ServiceState::Running, format!("on {}", names.join(", ")));

    let mut fast_left = INITIAL_ADVERTS;
    let mut next = Instant::now();
    update_prefixes(&mut lans, &uplink.borrow_and_update(), Instant::now());
    loop {
        tokio::select! {
            _ = context.shutdown.wait() => return Ok(()),
            error = readers.ended() => return Err(error),
            changed = uplink.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let snapshot = uplink.borrow_and_update().clone();
                if update_prefixes(&mut lans, &snapshot, Instant::now()) {
                    fast_left = INITIAL_ADVERTS;
                    next = Instant::now();
                }
            }
            Some((position, ())) = solicitations.recv() => {
                let now = Instant::now();
                if let Some(lan) = lans.get_mut(position) {
                    match lan.last_sent {
                        Some(last) if now - last < MIN_DELAY => next = next.min(last + MIN_DELAY),
                        _ => send(lan, now).await,
                    }
                }
            }
            _ = tokio::time::sleep_until(next) => {
                let now = Instant::now();
                for lan in lans.iter_mut() {
                    send(lan, now).await;
                }
                next = if fast_left > 1 {
                    fast_left -= 1;
                    now + INITIAL_INTERVAL
                } else {
                    fast_left = 0;
                    now + periodic_interval(&lans)
                };
            }
        }
    }
}

/// Every few minutes, but often enough that devices hear of a prefix again well before its preferred lifetime
/// runs out (an ISP with short DHCPv6 lifetimes).
fn periodic_interval(lans: &[Lan]) -> Duration {
    let shortest = lans.iter().filter_map(|l| l.current.as_ref()).map(|p| p.preferred).min();
    match shortest {
        Some(preferred) => INTERVAL.min((preferred / 3).max(INITIAL_INTERVAL)),
        None => INTERVAL,
    }
}

/// Takes the LANs' /64s from the delegated prefix; returns whether anything changed.
fn update_prefixes(lans: &mut [Lan], snapshot: &UplinkSnapshot, now: Instant) -> bool {
    let delegated = snapshot.dhcp6.as_ref().and_then(|s| s.lease.prefixes.first().cloned());
    let mut changed = false;
    for lan in lans.iter_mut() {
        let wanted = delegated.as_ref().and_then(|p| {
            let subnet = lan_subnet(p.network(), lan.number)?;
            Some(AdvertisedPrefix { prefix: subnet, valid: p.valid, preferred: p.preferred.min(p.valid) })
        });
        let same = lan.current.as_ref().map(|c| c.prefix) == wanted.as_ref().map(|w| w.prefix);
        if !same {
            if let Some(old) = lan.current.take() {
                tracing::info!("{}: {}/64 is replaced; announcing it as deprecated", lan.name, old.prefix);
                lan.deprecated.insert(old.prefix, now + DEPRECATED_FOR.min(old.valid));
            }
            if let Some(new) = &wanted {
                lan.deprecated.remove(&new.prefix);
                tracing::info!("{}: advertising {}/64", lan.name, new.prefix);
            }
            changed = true;
        }
        lan.current = wanted;
        lan.deprecated.retain(|_, until| *until > now);
    }
    changed
}

async fn send(lan: &mut Lan, now: Instant) {
    let Some(advert) = lan.advert(now) else { return };
    let target = SocketAddr::V6(SocketAddrV6::new(ALL_NODES, 0, 0, lan.index));
    match lan.socket.send_to(&advert.to_bytes(), target).await {
        Ok(_) => lan.last_sent = Some(now),
        // EADDRNOTAVAIL while the LAN's link-local address is tentative (DAD): the next round retries.
        Err(error) => tracing::info!("{}: sending a router advertisement: {error}", lan.name),
    }
}
