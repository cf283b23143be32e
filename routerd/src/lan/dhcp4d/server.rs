//! The DHCPv4 server for one LAN (RFC 2131 §4.3), without I/O: a request and the time in, a reply (and whether
//! the lease table changed) out.
//!
//! Address choice, in order: the client's static lease, its previous lease (even expired), the address it asks
//! for if free, a free address picked by a hash of its MAC (stable across restarts of the pool), and only when
//! no address was ever free, the one that expired longest ago (expired leases are kept so returning clients get
//! their old address back). Replies to clients go by broadcast, which every client accepts before it has an
//! address; relayed requests (giaddr set) are answered to the relay (§4.1).

use std::{
    collections::{BTreeSet, HashMap},
    net::Ipv4Addr,
    time::{Duration, SystemTime},
};

use dhcproto::{
    Decodable, Encodable, Name,
    v4::{DhcpOption, Message, MessageType, Opcode, OptionCode},
};

use super::commands::Offered;
use super::{
    leases::{Lease, LeaseTable, Mac, format_mac},
    offers::Offers,
    pool_map::PoolMap,
};
use crate::{dhcp4_wire, lan::hostname};

/// How long an offered address stays reserved for the client that was offered it.
const OFFER_HOLD: Duration = Duration::from_secs(60);
/// How long a declined address (someone else uses it) is not handed out.
const DECLINE_HOLD: Duration = Duration::from_secs(600);
/// Declined addresses remembered at once, at most a quarter of the pool (so DECLINEs from made-up clients
/// cannot take the LAN out of service); the ones that expire soonest give way.
const MAX_DECLINED: usize = 256;

/// Options the server reads from clients, with their lengths (see [`dhcp4_wire::sanitize`]).
const KNOWN_OPTIONS: &[dhcp4_wire::KnownOption] = &[
    (12, 0, 1), // hostname
    (50, 4, 1), // requested address
    (53, 1, 1), // message type
    (54, 4, 1), // server identifier
    (55, 0, 1), // parameter request list
    (61, 0, 1), // client identifier
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    pub interface: String,
    pub server_addr: Ipv4Addr,
    pub prefix_len: u8,
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
    pub lease_time: Duration,
    pub domain: String,
}

impl PoolConfig {
    /// Every host address of the router's subnet except its own (any prefix length up to /30).
    pub fn whole_subnet(interface: &str, server_addr: Ipv4Addr, prefix_len: u8) -> Option<PoolConfig> {
        if !(1..=30).contains(&prefix_len) {
            return None;
        }
        let mask = u32::MAX << (32 - u32::from(prefix_len));
        let network = server_addr.to_bits() & mask;
        let broadcast = network | !mask;
        Some(PoolConfig {
            interface: interface.to_string(),
            server_addr,
            prefix_len,
            first: Ipv4Addr::from_bits(network + 1),
            last: Ipv4Addr::from_bits(broadcast - 1),
            lease_time: Duration::from_secs(20 * 60),
            domain: "lan".to_string(),
        })
    }

    fn contains(&self, addr: Ipv4Addr) -> bool {
        (self.first..=self.last).contains(&addr) && addr != self.server_addr
    }

    fn size(&self) -> u32 {
        self.last.to_bits().saturating_sub(self.first.to_bits()) + 1
    }

    /// (addresses free now, addresses the pool can hand out): an address is taken while a static or unexpired
    /// lease holds it.
    pub fn usage<'a>(&self, leases: impl Iterator<Item = &'a Lease>, now: SystemTime) -> (u32, u32) {
        let usable = self.size() - u32::from((self.first..=self.last).contains(&self.server_addr));
        let taken = leases
            .filter(|l| l.interface == self.interface && self.contains(l.addr) && (l.is_static() || !l.expired(now)))
            .count();
        (usable.saturating_sub(u32::try_from(taken).unwrap_or(u32::MAX)), usable)
    }

    /// A host address of this LAN's subnet (static leases may lie outside the pool).
    pub fn contains_host(&self, addr: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - u32::from(self.prefix_len));
        let host = addr.to_bits() & !mask;
        self.in_subnet(addr) && host != 0 && host != !mask
    }

    fn in_subnet(&self, addr: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - u32::from(self.prefix_len));
        addr.to_bits() & mask == self.server_addr.to_bits() & mask
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReplyTo {
    Broadcast,
    /// A client that has an address (RENEWING, INFORM), at port 68.
    Client(Ipv4Addr),
    /// A relay agent, at port 67.
    Relay(Ipv4Addr),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reply {
    pub payload: Vec<u8>,
    pub to: ReplyTo,
    pub message_type: MessageType,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Handled {
    pub reply: Option<Reply>,
    /// The lease table changed (persist it, tell DNS and the API).
    pub changed: bool,
    /// A decision worth a log line.
    pub note: Option<String>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Ignored {
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("not a request")]
    NotARequest,
    #[error("the client chose another server")]
    OtherServer,
    #[error("message type {0:?} is not handled")]
    Unsupported(MessageType),
    #[error("DECLINE of {0}, which was not leased or offered to this client")]
    ForeignDecline(Ipv4Addr),
}

/// What changed in the lease table since the last [`Server::take_changes`]: the clients whose lease was written or
/// removed (for the journal) and the blocks of 256 addresses whose leases changed (for the published table).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Changes {
    pub clients: BTreeSet<Mac>,
    pub blocks: BTreeSet<u32>,
}

impl Changes {
    pub(crate) fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    fn touch(&mut self, mac: Mac, addr: Ipv4Addr) {
        self.clients.insert(mac);
        self.blocks.insert(block_of(addr));
    }
}

/// The block of 256 addresses `addr` is in.
pub(crate) fn block_of(addr: Ipv4Addr) -> u32 {
    addr.to_bits() >> 8
}

pub(crate) struct Server {
    config: PoolConfig,
    table: LeaseTable,
    /// The pool's addresses that have a lease (and the router's own address).
    leased: PoolMap,
    offers: Offers,
    declined: HashMap<Ipv4Addr, SystemTime>,
    changes: Changes,
}

impl Server {
    pub(crate) fn new(config: PoolConfig, leases: impl IntoIterator<Item = Lease>) -> Server {
        let leased = PoolMap::new(config.first, config.size());
        let mut server = Server {
            config,
            table: LeaseTable::default(),
            leased,
            offers: Offers::default(),
            declined: HashMap::new(),
            changes: Changes::default(),
        };
        server.leased.set(server.config.server_addr, true);
        let interface = server.config.interface.clone();
        for lease in leases.into_iter().filter(|l| l.interface == interface) {
            server.put_lease(lease);
        }
        server.changes = Changes::default();
        server
    }

    /// Writes `mac`'s lease (taking its address from whoever had it).
    pub(crate) fn put_lease(&mut self, lease: Lease) {
        if let Some(old) = self.table.by_mac(&lease.hardware_addr).map(|l| l.addr) {
            self.leased.set(old, false);
            self.changes.touch(lease.hardware_addr, old);
        }
        if let Some(owner) = self.table.by_addr(lease.addr).map(|l| l.hardware_addr) {
            self.changes.touch(owner, lease.addr);
        }
        self.leased.set(lease.addr, true);
        self.changes.touch(lease.hardware_addr, lease.addr);
        self.table.insert(lease);
        self.leased.set(self.config.server_addr, true);
    }

    pub(crate) fn remove_lease(&mut self, mac: &Mac) -> Option<Lease> {
        let lease = self.table.remove(mac)?;
        self.leased.set(lease.addr, false);
        self.leased.set(self.config.server_addr, true);
        self.changes.touch(*mac, lease.addr);
        Some(lease)
    }

    /// What changed since the last call.
    pub(crate) fn take_changes(&mut self) -> Changes {
        std::mem::take(&mut self.changes)
    }

    /// Offers made and not yet requested.
    pub(crate) fn offers_outstanding(&self) -> usize {
        self.offers.len()
    }

    /// The offers that still stand at `now`.
    pub(crate) fn offers(&self, now: SystemTime) -> impl Iterator<Item = Offered> + '_ {
        self.offers.standing(now).map(|(mac, addr, until)| Offered {
            mac,
            addr,
            interface: self.config.interface.clone(),
            until,
        })
    }

    pub(crate) fn config(&self) -> &PoolConfig {
        &self.config
    }

    pub(crate) fn leases(&self) -> &LeaseTable {
        &self.table
    }

    pub(crate) fn handle(&mut self, now: SystemTime, payload: &[u8]) -> Result<Handled, Ignored> {
        let clean = dhcp4_wire::sanitize(payload, KNOWN_OPTIONS).map_err(|e| Ignored::Malformed(e.0))?;
        let request = Message::from_bytes(&clean).map_err(|e| Ignored::Malformed(e.to_string()))?;
        if request.opcode() != Opcode::BootRequest {
            return Err(Ignored::NotARequest);
        }
        if clean[1] != 1 || clean[2] != 6 {
            return Err(Ignored::Malformed("not an Ethernet hardware address".into()));
        }
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&clean[28..34]);
        let kind = request.opts().msg_type().ok_or_else(|| Ignored::Malformed("no message type".into()))?;
        let requested = match request.opts().get(OptionCode::RequestedIpAddress) {
            Some(DhcpOption::RequestedIpAddress(addr)) => Some(*addr),
            _ => None,
        };
        let server_id = match request.opts().get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(id)) => Some(*id),
            _ => None,
        };
        match kind {
            MessageType::Discover => Ok(self.discover(now, &request, mac, requested)),
            MessageType::Request => {
                if server_id.is_some_and(|id| id != self.config.server_addr) {
                    self.offers.remove(&mac);
                    return Err(Ignored::OtherServer);
                }
                let ciaddr = request.ciaddr();
                let wanted = requested.or((!ciaddr.is_unspecified()).then_some(ciaddr));
                Ok(self.request(now, &request, mac, wanted))
            }
            MessageType::Decline => {
                let Some(addr) = requested else { return Err(Ignored::Malformed("DECLINE without an address".into())) };
                // Only the device the address was leased or offered to can say it is taken; anyone else could
                // otherwise take the whole pool out of service.
                let holds =
                    self.table.by_mac(&mac).is_some_and(|l| l.addr == addr) || self.offers.of(&mac, now) == Some(addr);
                if !self.config.contains(addr) || !holds {
                    return Err(Ignored::ForeignDecline(addr));
                }
                self.declined.retain(|_, until| *until > now);
                let cap = MAX_DECLINED.min(self.config.size() as usize / 4).max(1);
                if self.declined.len() >= cap
                    && let Some(soonest) = self.declined.iter().min_by_key(|(_, until)| **until).map(|(a, _)| *a)
                {
                    self.declined.remove(&soonest);
                }
                self.declined.insert(addr, now + DECLINE_HOLD);
                self.offers.remove(&mac);
                let changed = self.table.by_mac(&mac).is_some_and(|l| l.addr == addr && !l.is_static());
                if changed {
                    self.remove_lease(&mac);
                }
                let note = format!(
                    "{} declined {addr} (in use by someone else): not handing it out for 10 minutes",
                    format_mac(&mac)
                );
                Ok(Handled { reply: None, changed, note: Some(note) })
            }
            MessageType::Release => {
                let ciaddr = request.ciaddr();
                let mut changed = false;
                if let Some(lease) = self.table.by_mac(&mac).filter(|l| l.addr == ciaddr && !l.is_static()).cloned() {
                    // Kept, expired: the client gets the same address when it comes back.
                    self.put_lease(Lease { expiry: Some(now), ..lease });
                    changed = true;
                }
                Ok(Handled { reply: None, changed, note: Some(format!("{} released {ciaddr}", format_mac(&mac))) })
            }
            MessageType::Inform => {
                let reply = self.reply(&request, MessageType::Ack, Ipv4Addr::UNSPECIFIED, false);
                Ok(Handled { reply: Some(reply), changed: false, note: None })
            }
            other => Err(Ignored::Unsupported(other)),
        }
    }

    fn discover(&mut self, now: SystemTime, request: &Message, mac: Mac, requested: Option<Ipv4Addr>) -> Handled {
        self.offers.expire(now);
        self.declined.retain(|_, until| *until > now);
        let mut note = None;
        let addr = match self.choose(now, mac, requested) {
            Some(addr) => addr,
            // Nothing free but addresses offered to others: the oldest offer yields, so DISCOVERs that are
            // never followed by a REQUEST cannot keep a new device off the LAN.
            None => match self.offers.yield_oldest(&mac) {
                Some((holder, addr)) => {
                    note = Some(format!(
                        "the pool of {} is full: {addr}, offered to {} and not requested, goes to {}",
                        self.config.interface,
                        format_mac(&holder),
                        format_mac(&mac)
                    ));
                    addr
                }
                None => {
                    return Handled {
                        note: Some(format!(
                            "no free address for {} in {}: the pool is full",
                            format_mac(&mac),
                            self.config.interface
                        )),
                        ..Handled::default()
                    };
                }
            },
        };
        self.offers.insert(mac, addr, now + OFFER_HOLD);
        Handled { reply: Some(self.reply(request, MessageType::Offer, addr, true)), changed: false, note }
    }

    fn request(&mut self, now: SystemTime, request: &Message, mac: Mac, wanted: Option<Ipv4Addr>) -> Handled {
        self.declined.retain(|_, until| *until > now);
        let Some(addr) = wanted.filter(|addr| self.config.in_subnet(*addr) && self.available(now, mac, *addr)) else {
            let what = wanted.map(|a| a.to_string()).unwrap_or_else(|| "no address".into());
            return Handled {
                reply: Some(self.reply(request, MessageType::Nak, Ipv4Addr::UNSPECIFIED, false)),
                changed: false,
                note: Some(format!("NAK to {}: {what} is not available for it", format_mac(&mac))),
            };
        };
        self.offers.remove(&mac);
        let previous = self.table.by_mac(&mac).cloned();
        let sent = match request.opts().get(OptionCode::Hostname) {
            Some(DhcpOption::Hostname(name)) => hostname::sanitize(name),
            _ => None,
        };
        let is_static = previous.as_ref().is_some_and(Lease::is_static);
        let lease = Lease {
            num: addr.to_bits().saturating_sub(self.config.first.to_bits()),
            addr,
            hardware_addr: mac,
            // A static lease keeps the name it was given; otherwise the client's latest wins.
            hostname: if is_static {
                previous.as_ref().and_then(|p| p.hostname.clone()).or(sent)
            } else {
                sent.or(previous.as_ref().and_then(|p| p.hostname.clone()))
            },
            hostname_override: previous.as_ref().and_then(|p| p.hostname_override.clone()),
            expiry: if is_static { None } else { Some(now + self.config.lease_time) },
            last_ack: Some(now),
            interface: self.config.interface.clone(),
        };
        let note = (previous.as_ref().map(|p| (p.addr, p.name().map(str::to_string)))
            != Some((addr, lease.name().map(str::to_string))))
        .then(|| format!("lease {addr} to {} ({})", format_mac(&mac), lease.name().unwrap_or("no name")));
        self.put_lease(lease);
        Handled { reply: Some(self.reply(request, MessageType::Ack, addr, true)), changed: true, note }
    }

    /// Whether `addr` may be leased to `mac` now.
    fn available(&self, now: SystemTime, mac: Mac, addr: Ipv4Addr) -> bool {
        if addr == self.config.server_addr || self.declined.get(&addr).is_some_and(|until| *until > now) {
            return false;
        }
        if self.offers.held_by_other(addr, &mac, now) {
            return false;
        }
        match self.table.by_addr(addr) {
            Some(lease) if lease.hardware_addr == mac => lease.is_static() || self.config.contains(addr),
            Some(lease) => lease.expired(now) && !lease.is_static() && self.config.contains(addr),
            None => self.config.contains(addr),
        }
    }

    fn choose(&self, now: SystemTime, mac: Mac, requested: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
        if let Some(lease) = self.table.by_mac(&mac).filter(|l| l.is_static() || self.available(now, mac, l.addr)) {
            return Some(lease.addr);
        }
        if let Some(addr) = self.offers.of(&mac, now) {
            return Some(addr);
        }
        if let Some(addr) = requested.filter(|a| self.available(now, mac, *a)) {
            return Some(addr);
        }
        // Never leased and free, starting at a place that depends only on the MAC.
        let start = mac.iter().fold(0u32, |hash, b| hash.wrapping_mul(31).wrapping_add(u32::from(*b)));
        let never_leased = self.leased.free_from(start).find(|addr| self.available(now, mac, *addr));
        if never_leased.is_some() {
            return never_leased;
        }
        // The pool is full: reclaim the lease that expired longest ago.
        self.table
            .iter()
            .filter(|l| l.expired(now) && !l.is_static() && self.available(now, mac, l.addr))
            .min_by_key(|l| l.expiry)
            .map(|l| l.addr)
    }

    fn reply(&self, request: &Message, kind: MessageType, yiaddr: Ipv4Addr, lease_options: bool) -> Reply {
        let config = &self.config;
        let zero = Ipv4Addr::UNSPECIFIED;
        let chaddr = &request.chaddr()[..usize::from(request.hlen()).min(16)];
        let ciaddr = if kind == MessageType::Ack && yiaddr.is_unspecified() { request.ciaddr() } else { zero };
        let mut reply = Message::new_with_id(request.xid(), ciaddr, yiaddr, zero, request.giaddr(), chaddr);
        reply.set_opcode(Opcode::BootReply).set_flags(request.flags());
        let opts = reply.opts_mut();
        opts.insert(DhcpOption::MessageType(kind));
        opts.insert(DhcpOption::ServerIdentifier(config.server_addr));
        if kind != MessageType::Nak {
            let wanted = |code: OptionCode| match request.opts().get(OptionCode::ParameterRequestList) {
                Some(DhcpOption::ParameterRequestList(list)) => list.contains(&code),
                _ => true,
            };
            if lease_options {
                let secs = u32::try_from(config.lease_time.as_secs()).unwrap_or(u32::MAX);
                opts.insert(DhcpOption::AddressLeaseTime(secs));
                opts.insert(DhcpOption::Renewal(secs / 2));
                opts.insert(DhcpOption::Rebinding(secs / 8 * 7));
            }
            let mask = Ipv4Addr::from_bits(u32::MAX << (32 - u32::from(config.prefix_len)));
            if wanted(OptionCode::SubnetMask) {
                opts.insert(DhcpOption::SubnetMask(mask));
            }
            if wanted(OptionCode::Router) {
                opts.insert(DhcpOption::Router(vec![config.server_addr]));
            }
            if wanted(OptionCode::DomainNameServer) {
                opts.insert(DhcpOption::DomainNameServer(vec![config.server_addr]));
            }
            if wanted(OptionCode::DomainName) {
                opts.insert(DhcpOption::DomainName(config.domain.clone()));
            }
            if wanted(OptionCode::DomainSearch)
                && let Ok(name) = Name::from_ascii(format!("{}.", config.domain))
            {
                opts.insert(DhcpOption::DomainSearch(vec![name]));
            }
        }
        let to = if !request.giaddr().is_unspecified() {
            ReplyTo::Relay(request.giaddr())
        } else if kind != MessageType::Nak && !request.ciaddr().is_unspecified() {
            ReplyTo::Client(request.ciaddr())
        } else {
            ReplyTo::Broadcast
        };
        Reply { payload: reply.to_vec().unwrap_or_default(), to, message_type: kind }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

    fn server(prefix_len: u8) -> Server {
        Server::new(PoolConfig::whole_subnet("lan0", SERVER, prefix_len).expect("pool"), [])
    }

    fn mac(n: u8) -> Mac {
        [2, 0, 0, 0, 2, n]
    }

    fn client_message(kind: MessageType, mac: Mac, options: Vec<DhcpOption>) -> Vec<u8> {
        let zero = Ipv4Addr::UNSPECIFIED;
        let mut message = Message::new_with_id(u32::from(mac[5]), zero, zero, zero, zero, &mac);
        message.opts_mut().insert(DhcpOption::MessageType(kind));
        for option in options {
            message.opts_mut().insert(option);
        }
        message.to_vec().expect("encodes")
    }

    fn reply_of(handled: &Handled) -> Message {
        Message::from_bytes(&handled.reply.as_ref().expect("a reply").payload).expect("decodes")
    }

    /// DISCOVER then REQUEST; the leased address.
    fn lease(server: &mut Server, now: SystemTime, mac: Mac, hostname: Option<&str>) -> Option<Ipv4Addr> {
        let handled = server.handle(now, &client_message(MessageType::Discover, mac, vec![])).expect("handled");
        let offered = handled.reply.as_ref().map(|_| reply_of(&handled).yiaddr())?;
        let mut options = vec![DhcpOption::RequestedIpAddress(offered), DhcpOption::ServerIdentifier(SERVER)];
        if let Some(name) = hostname {
            options.push(DhcpOption::Hostname(name.to_string()));
        }
        let ack = server.handle(now, &client_message(MessageType::Request, mac, options)).expect("handled");
        assert!(ack.changed);
        let reply = reply_of(&ack);
        assert_eq!(reply.opts().msg_type(), Some(MessageType::Ack));
        Some(reply.yiaddr())
    }

    #[test]
    fn discover_offer_request_ack_with_the_options_a_lan_needs() {
        let mut server = server(24);
        let now = SystemTime::now();
        let handled = server.handle(now, &client_message(MessageType::Discover, mac(1), vec![])).expect("handled");
        let offer = reply_of(&handled);
        assert_eq!(handled.reply.as_ref().map(|r| r.to), Some(ReplyTo::Broadcast));
        assert_eq!(offer.opts().msg_type(), Some(MessageType::Offer));
        assert_eq!(
            offer.opts().get(OptionCode::SubnetMask),
            Some(&DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)))
        );
        assert_eq!(offer.opts().get(OptionCode::Router), Some(&DhcpOption::Router(vec![SERVER])));
        assert_eq!(offer.opts().get(OptionCode::DomainNameServer), Some(&DhcpOption::DomainNameServer(vec![SERVER])));
        assert_eq!(offer.opts().get(OptionCode::DomainName), Some(&DhcpOption::DomainName("lan".into())));
        assert_eq!(offer.opts().get(OptionCode::AddressLeaseTime), Some(&DhcpOption::AddressLeaseTime(1200)));
        assert_eq!(offer.opts().get(OptionCode::Renewal), Some(&DhcpOption::Renewal(600)));
        assert!(offer.opts().get(OptionCode::DomainSearch).is_some());

        let addr = lease(&mut server, now, mac(1), Some("Kitchen Tablet")).expect("leased");
        assert_eq!(addr, offer.yiaddr());
        let lease = server.leases().by_mac(&mac(1)).expect("in the table");
        assert_eq!(lease.hostname.as_deref(), Some("kitchen-tablet"));
        assert_eq!(lease.expiry, Some(now + Duration::from_secs(1200)));

        // The same client later (even after its lease expired) gets the same address.
        let later = now + Duration::from_secs(3 * 3600);
        assert_eq!(lease_again(&mut server, later, mac(1)), Some(addr));
    }

    fn lease_again(server: &mut Server, now: SystemTime, mac: Mac) -> Option<Ipv4Addr> {
        lease(server, now, mac, None)
    }

    #[test]
    fn a_full_pool_reclaims_the_longest_expired_lease() {
        // A /29: six hosts, one of them the router.
        let mut server = server(29);
        let now = SystemTime::now();
        let addrs: Vec<_> = (1..=5).map(|n| lease(&mut server, now, mac(n), None).expect("leased")).collect();
        assert_eq!(addrs.len(), 5);
        assert!(!addrs.contains(&SERVER));
        let full = server.handle(now, &client_message(MessageType::Discover, mac(6), vec![])).expect("handled");
        assert!(full.reply.is_none());
        assert!(full.note.as_deref().is_some_and(|n| n.contains("pool is full")), "{full:?}");
        // After the leases expire, the newcomer gets one of them.
        let later = now + Duration::from_secs(1201);
        let reclaimed = lease(&mut server, later, mac(6), None).expect("reclaimed");
        assert!(addrs.contains(&reclaimed));
        assert_eq!(server.leases().len(), 5);
    }

    /// A DISCOVER from a made-up MAC that never follows up, as a flooding device sends them.
    fn flood_discover(server: &mut Server, now: SystemTime, n: u32) -> Handled {
        let [a, b, c, d] = n.to_be_bytes();
        server.handle(now, &client_message(MessageType::Discover, [0x0a, a, b, c, d, 0x01], vec![])).expect("handled")
    }

    #[test]
    fn a_flood_of_discovers_cannot_keep_a_new_device_off_the_lan() {
        let mut server = server(24);
        let now = SystemTime::now();
        let resident = lease(&mut server, now, mac(1), None).expect("leased before the flood");
        for n in 0..3000 {
            flood_discover(&mut server, now, n);
        }
        // Every free address is offered to the flood (253 of 253), and yet a new device gets one.
        assert_eq!(server.offers_outstanding(), 252);
        let newcomer = lease(&mut server, now, mac(2), Some("newcomer")).expect("a new device gets an address");
        assert_ne!(newcomer, resident);
        // The device that already had a lease renews it (REQUEST from its address, no server id).
        let zero = Ipv4Addr::UNSPECIFIED;
        let mut renew = Message::new_with_id(7, resident, zero, zero, zero, &mac(1));
        renew.opts_mut().insert(DhcpOption::MessageType(MessageType::Request));
        let renewed = server.handle(now, &renew.to_vec().expect("encodes")).expect("handled");
        assert_eq!(
            (reply_of(&renewed).opts().msg_type(), reply_of(&renewed).yiaddr()),
            (Some(MessageType::Ack), resident)
        );
        assert!(server.offers_outstanding() <= 252, "offers stay bounded by the pool");
    }

    #[test]
    fn only_the_holder_may_decline_and_the_declined_table_is_bounded() {
        let mut server = server(24);
        let now = SystemTime::now();
        let addr = lease(&mut server, now, mac(1), None).expect("leased");
        let decline = |mac: Mac, addr: Ipv4Addr| {
            client_message(MessageType::Decline, mac, vec![DhcpOption::RequestedIpAddress(addr)])
        };
        // Another device cannot take the address out of service, nor one outside the LAN.
        assert_eq!(server.handle(now, &decline(mac(2), addr)), Err(Ignored::ForeignDecline(addr)));
        let outside = Ipv4Addr::new(198, 51, 100, 7);
        assert_eq!(server.handle(now, &decline(mac(1), outside)), Err(Ignored::ForeignDecline(outside)));
        assert_eq!(lease_again(&mut server, now, mac(1)), Some(addr), "still leased to its device");
        // The holder can; so can a device for what it was offered. The table stays bounded under a flood.
        for n in 0..1000u32 {
            let offered = reply_of(&flood_discover(&mut server, now, n)).yiaddr();
            let [a, b, c, d] = n.to_be_bytes();
            assert!(server.handle(now, &decline([0x0a, a, b, c, d, 0x01], offered)).is_ok());
        }
        assert_eq!(server.declined.len(), 253 / 4, "at most a quarter of the pool is out of service");
        assert!(lease(&mut server, now, mac(5), None).is_some(), "a new device still gets an address");
        assert!(server.handle(now, &decline(mac(1), addr)).is_ok());
    }

    #[test]
    fn a_hostname_that_is_not_utf8_still_gets_the_device_a_lease() {
        let mut server = server(24);
        let now = SystemTime::now();
        let mut discover = client_message(MessageType::Discover, mac(3), vec![DhcpOption::Hostname("xx".into())]);
        let at = (240..discover.len()).find(|&i| discover[i] == 12).expect("option 12");
        discover[at + 2..at + 4].copy_from_slice(&[0xff, 0xfe]);
        let offer = server.handle(now, &discover).expect("answered");
        assert_eq!(reply_of(&offer).opts().msg_type(), Some(MessageType::Offer));
    }

    #[test]
    fn static_leases_decline_release_inform_and_relays() {
        let mut server = server(24);
        let now = SystemTime::now();
        let fixed = Ipv4Addr::new(192, 0, 2, 50);
        server.put_lease(Lease {
            num: 49,
            addr: fixed,
            hardware_addr: mac(9),
            hostname: Some("printer".into()),
            hostname_override: None,
            expiry: None,
            last_ack: None,
            interface: "lan0".into(),
        });
        // Nobody else gets the static address, even asking for it.
        let other = server
            .handle(now, &client_message(MessageType::Discover, mac(1), vec![DhcpOption::RequestedIpAddress(fixed)]))
            .expect("handled");
        assert_ne!(reply_of(&other).yiaddr(), fixed);
        assert_eq!(lease(&mut server, now, mac(9), Some("whatever")), Some(fixed));
        let static_lease = server.leases().by_mac(&mac(9)).expect("static");
        assert!(static_lease.is_static() && static_lease.hostname.as_deref() == Some("printer"));

        // DECLINE: that address is not offered again for a while.
        let addr = lease(&mut server, now, mac(2), None).expect("leased");
        let declined = server
            .handle(now, &client_message(MessageType::Decline, mac(2), vec![DhcpOption::RequestedIpAddress(addr)]))
            .expect("handled");
        assert!(declined.reply.is_none() && declined.changed);
        assert_ne!(lease(&mut server, now, mac(2), None), Some(addr));

        // RELEASE: kept as expired, so the client gets it back.
        let addr3 = lease(&mut server, now, mac(3), None).expect("leased");
        let mut release = Message::from_bytes(&client_message(MessageType::Release, mac(3), vec![])).expect("decodes");
        release.set_ciaddr(addr3);
        let released = server.handle(now, &release.to_vec().expect("encodes")).expect("handled");
        assert!(released.changed && server.leases().by_mac(&mac(3)).is_some_and(|l| l.expired(now)));

        // INFORM: options without a lease, to the client's address.
        let mut inform = Message::from_bytes(&client_message(MessageType::Inform, mac(4), vec![])).expect("decodes");
        inform.set_ciaddr(Ipv4Addr::new(192, 0, 2, 77));
        let informed = server.handle(now, &inform.to_vec().expect("encodes")).expect("handled");
        let reply = reply_of(&informed);
        assert_eq!(informed.reply.as_ref().map(|r| r.to), Some(ReplyTo::Client(Ipv4Addr::new(192, 0, 2, 77))));
        assert!(reply.opts().get(OptionCode::AddressLeaseTime).is_none());

        // Relayed: the answer goes to the relay agent.
        let mut relayed = Message::from_bytes(&client_message(MessageType::Discover, mac(5), vec![])).expect("decodes");
        relayed.set_giaddr(Ipv4Addr::new(192, 0, 2, 254));
        let handled = server.handle(now, &relayed.to_vec().expect("encodes")).expect("handled");
        assert_eq!(handled.reply.as_ref().map(|r| r.to), Some(ReplyTo::Relay(Ipv4Addr::new(192, 0, 2, 254))));
        assert_eq!(reply_of(&handled).giaddr(), Ipv4Addr::new(192, 0, 2, 254));
    }

    #[test]
    fn requests_for_other_servers_or_foreign_addresses() {
        let mut server = server(24);
        let now = SystemTime::now();
        let elsewhere = client_message(
            MessageType::Request,
            mac(1),
            vec![DhcpOption::ServerIdentifier(Ipv4Addr::new(192, 0, 2, 2))],
        );
        assert_eq!(server.handle(now, &elsewhere), Err(Ignored::OtherServer));
        // INIT-REBOOT with an address from another network: NAK, broadcast.
        let foreign = client_message(
            MessageType::Request,
            mac(1),
            vec![DhcpOption::RequestedIpAddress(Ipv4Addr::new(198, 51, 100, 7))],
        );
        let handled = server.handle(now, &foreign).expect("handled");
        assert_eq!(reply_of(&handled).opts().msg_type(), Some(MessageType::Nak));
        assert_eq!(handled.reply.as_ref().map(|r| r.to), Some(ReplyTo::Broadcast));
        assert!(!handled.changed);
    }

    #[test]
    fn malformed_requests_never_panic_nor_lease() {
        let good = client_message(MessageType::Discover, mac(1), vec![DhcpOption::Hostname("x".into())]);
        let mut server = server(24);
        let now = SystemTime::now();
        for len in 0..good.len() - 1 {
            let _ = server.handle(now, &good[..len]);
        }
        let mut seed = 0x1234_5678_u32;
        for _ in 0..20_000 {
            let mut bytes = good.clone();
            for _ in 0..1 + seed % 4 {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let at = seed as usize % bytes.len();
                bytes[at] = (seed >> 8) as u8;
            }
            let _ = server.handle(now, &bytes);
        }
        assert!(server.leases().is_empty(), "DISCOVERs never create leases");
    }
}
