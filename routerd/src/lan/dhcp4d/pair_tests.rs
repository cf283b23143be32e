//! routerd's own DHCPv4 client (the uplink's, without I/O) against routerd's own DHCPv4 server (the LAN's,
//! without I/O), wired together in memory on a virtual clock: whole lease lifetimes (obtain, renew, rebind,
//! release, reboot, a server restart, lost packets) in microseconds, without root or sockets.

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant, SystemTime},
};

use dhcproto::v4::MessageType;

use super::{Mac, PoolConfig, ReplyTo, Server};
use crate::uplink::{
    dhcp4::client::{Client, ClientConfig, Destination, Event, State, Transmit},
    dhcp4::lease::Lease as ClientLease,
    entropy::Sequence,
    protocol::Protocol,
};

const ROUTER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const MAC: Mac = [0x02, 0, 0, 0, 0x19, 0x01];

/// The two cores and one clock: the client counts in `Instant`s, the server in wall-clock time; both advance
/// together.
struct Pair {
    client: Client,
    server: Server,
    started: Instant,
    wall_start: SystemTime,
    now: Instant,
    /// Every message that reached its peer, in order.
    delivered: Vec<MessageType>,
    /// Client messages dropped on the way (a lossy link), by their index among the client's sends.
    drop_client_sends: Vec<usize>,
    client_sends: usize,
}

impl Pair {
    fn new(previous: Option<ClientLease>, server: Server) -> Pair {
        let now = Instant::now();
        let config = ClientConfig { hardware_addr: MAC, hostname: Some("laptop".into()) };
        let client = Client::new(config, Box::new(Sequence::new(vec![0x1234_5678, 7, 0x0bad_cafe])), previous, now);
        Pair {
            client,
            server,
            started: now,
            wall_start: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            now,
            delivered: Vec::new(),
            drop_client_sends: Vec::new(),
            client_sends: 0,
        }
    }

    fn wall(&self) -> SystemTime {
        self.wall_start + (self.now - self.started)
    }

    /// Delivers the client's sends to the server and the server's replies back, until both are quiet; returns
    /// the client's events other than sends.
    fn exchange(&mut self, events: Vec<Event>) -> Vec<Event> {
        let mut outcome = Vec::new();
        let mut queue = events;
        while !queue.is_empty() {
            let mut next = Vec::new();
            for event in queue {
                let Event::Send(transmit) = event else {
                    outcome.push(event);
                    continue;
                };
                self.client_sends += 1;
                if self.drop_client_sends.contains(&(self.client_sends - 1)) {
                    continue;
                }
                next.extend(self.through_server(&transmit));
            }
            queue = next;
        }
        outcome
    }

    /// The server's handling of one client message, and the client's of the reply.
    fn through_server(&mut self, transmit: &Transmit) -> Vec<Event> {
        self.delivered.push(transmit.message_type);
        let handled =
            self.server.handle(self.wall(), &transmit.payload).expect("the server takes the client's message");
        let Some(reply) = handled.reply else { return Vec::new() };
        // A reply goes where the client can receive it: broadcast while it has no address, to its address after.
        match (transmit.destination, reply.to) {
            (Destination::Broadcast, ReplyTo::Broadcast) => {}
            (Destination::Unicast(_), ReplyTo::Client(to)) => assert_eq!(Some(to), self.leased(), "unicast reply"),
            (Destination::Broadcast, ReplyTo::Client(to)) => assert_eq!(to, transmit.source, "rebinding reply"),
            other => panic!("a reply the client cannot receive: {other:?}"),
        }
        self.delivered.push(reply.message_type);
        self.client.handle_packet(self.now, &reply.payload).expect("the client takes the server's reply")
    }

    /// Lets time pass until the client's next wake-up (at most `until`), and runs what it sends.
    fn run_until(&mut self, until: Instant) -> Vec<Event> {
        let mut outcome = Vec::new();
        while self.client.next_wakeup() <= until {
            self.now = self.now.max(self.client.next_wakeup());
            let events = self.client.handle_timeout(self.now);
            outcome.extend(self.exchange(events));
        }
        self.now = self.now.max(until);
        outcome
    }

    fn leased(&self) -> Option<Ipv4Addr> {
        self.client.lease().map(|(lease, _)| lease.address)
    }

    /// The server's lease for the client: address and seconds from now to its expiry.
    fn server_lease(&self) -> Option<(Ipv4Addr, Option<u64>)> {
        let lease = self.server.leases().by_mac(&MAC)?;
        let left = lease.expiry.and_then(|e| e.duration_since(self.wall()).ok()).map(|d| d.as_secs());
        Some((lease.addr, left))
    }
}

fn server() -> Server {
    let mut pool = PoolConfig::whole_subnet("lan0", ROUTER, 24).expect("a /24 pool");
    pool.lease_time = Duration::from_secs(600);
    Server::new(pool, [])
}

fn bound(events: &[Event]) -> Option<&ClientLease> {
    events.iter().find_map(|e| if let Event::Bound(lease) = e { Some(lease) } else { None })
}

/// Obtains a lease from a fresh start.
fn obtained() -> (Pair, ClientLease) {
    let mut pair = Pair::new(None, server());
    let events = pair.run_until(pair.now);
    let lease = bound(&events).cloned().expect("a lease");
    (pair, lease)
}

#[test]
fn a_fresh_client_gets_a_lease_with_the_routers_settings() {
    let (pair, lease) = obtained();
    use MessageType::*;
    assert_eq!(pair.delivered, [Discover, Offer, Request, Ack]);
    assert_eq!(pair.client.state(), State::Bound);
    assert_ne!(lease.address, ROUTER);
    assert_eq!((lease.prefix_len, lease.gateway, lease.server_id), (24, Some(ROUTER), Some(ROUTER)));
    assert_eq!(lease.dns, [ROUTER]);
    assert_eq!(lease.lease_time, Duration::from_secs(600));
    assert_eq!(pair.server_lease(), Some((lease.address, Some(600))));
    let on_server = pair.server.leases().by_mac(&MAC).expect("the server's lease");
    assert_eq!(on_server.hostname.as_deref(), Some("laptop"), "the client's hostname reached the server");
}

#[test]
fn the_client_renews_at_t1_with_the_server_that_leased_and_both_agree_on_the_new_expiry() {
    let (mut pair, lease) = obtained();
    let t1 = pair.now + lease.t1;
    let before = pair.delivered.len();
    let events = pair.run_until(t1);
    let renewed = bound(&events).expect("renewed");
    assert_eq!(renewed.address, lease.address);
    assert_eq!(pair.delivered[before..], [MessageType::Request, MessageType::Ack]);
    assert_eq!(pair.client.state(), State::Bound);
    assert_eq!(pair.server_lease(), Some((lease.address, Some(600))), "counted from the renewal");
    // Many lifetimes later, still the same address, never a DISCOVER again.
    let events = pair.run_until(pair.now + Duration::from_secs(24 * 3600));
    assert!(events.iter().all(|e| matches!(e, Event::Bound(l) if l.address == lease.address)), "{events:?}");
    assert!(!pair.delivered[before..].contains(&MessageType::Discover));
    assert_eq!(pair.server_lease().map(|l| l.0), Some(lease.address));
}

#[test]
fn renewals_the_server_does_not_hear_end_in_a_rebind_by_broadcast() {
    let (mut pair, lease) = obtained();
    // Every unicast renewal is lost; the broadcast REBIND at T2 gets through.
    let sent = pair.client_sends;
    pair.drop_client_sends = (sent..sent + 64).collect();
    let t2 = pair.now + lease.t2;
    let events = pair.run_until(t2 - Duration::from_secs(1));
    assert!(bound(&events).is_none());
    assert_eq!(pair.client.state(), State::Renewing);
    pair.drop_client_sends.clear();
    let events = pair.run_until(t2);
    assert_eq!(bound(&events).map(|l| l.address), Some(lease.address), "rebound to the same address");
    assert_eq!(pair.client.state(), State::Bound);
}

#[test]
fn a_lost_discover_is_sent_again_and_a_lease_follows() {
    let mut pair = Pair::new(None, server());
    pair.drop_client_sends = vec![0];
    let first = pair.run_until(pair.now);
    assert!(bound(&first).is_none(), "the first DISCOVER was lost");
    assert_eq!(pair.client.state(), State::Selecting);
    let started = pair.now;
    let events = pair.run_until(pair.now + Duration::from_secs(10));
    assert!(bound(&events).is_some(), "bound after the retransmission");
    let waited = pair.now - started;
    assert!(waited >= Duration::from_secs(3), "retransmitted after about 4 s, not at once: {waited:?}");
}

#[test]
fn a_released_address_comes_back_to_the_same_client() {
    let (mut pair, lease) = obtained();
    let events = pair.client.release(pair.now);
    pair.exchange(events);
    assert_eq!(pair.delivered.last(), Some(&MessageType::Release));
    assert_eq!(pair.client.state(), State::Released);
    assert_eq!(pair.server_lease(), Some((lease.address, Some(0))), "kept, expired");
    // The device comes back later: a new DISCOVER gets the same address.
    pair.now += Duration::from_secs(60);
    pair.client.restart(pair.now);
    let events = pair.run_until(pair.now);
    assert_eq!(bound(&events).map(|l| l.address), Some(lease.address));
}

#[test]
fn after_both_restart_the_saved_lease_is_confirmed_by_init_reboot() {
    let (pair, lease) = obtained();
    // The server starts again from its saved table (as from leases.json); the client from its saved lease.
    let saved: Vec<super::Lease> = pair.server.leases().iter().cloned().collect();
    let mut pool = PoolConfig::whole_subnet("lan0", ROUTER, 24).expect("pool");
    pool.lease_time = Duration::from_secs(600);
    let mut again = Pair::new(Some(lease.clone()), Server::new(pool, saved));
    again.now = pair.now + Duration::from_secs(30);
    again.started = pair.started;
    let events = again.run_until(again.now);
    assert_eq!(again.delivered, [MessageType::Request, MessageType::Ack], "INIT-REBOOT, no DISCOVER");
    assert_eq!(bound(&events).map(|l| l.address), Some(lease.address));
}

#[test]
fn a_saved_lease_from_another_network_is_refused_and_the_client_starts_over() {
    let foreign = ClientLease {
        address: Ipv4Addr::new(198, 51, 100, 23),
        prefix_len: 24,
        gateway: Some(Ipv4Addr::new(198, 51, 100, 1)),
        dns: vec![],
        ntp: vec![],
        domain: None,
        server_id: Some(Ipv4Addr::new(198, 51, 100, 1)),
        lease_time: Duration::from_secs(3600),
        t1: Duration::from_secs(1800),
        t2: Duration::from_secs(3150),
    };
    let mut pair = Pair::new(Some(foreign), server());
    let events = pair.run_until(pair.now + Duration::from_secs(30));
    assert!(events.iter().any(|e| matches!(e, Event::Refused(_))), "{events:?}");
    let lease = bound(&events).expect("a new lease after the NAK");
    assert_eq!(lease.address.octets()[..3], ROUTER.octets()[..3], "an address of the router's network");
    assert_eq!(lease.gateway, Some(ROUTER));
    use MessageType::*;
    assert_eq!(pair.delivered, [Request, Nak, Discover, Offer, Request, Ack]);
}
