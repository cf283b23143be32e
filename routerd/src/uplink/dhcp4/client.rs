//! The DHCPv4 client state machine (RFC 2131 §4.4), without I/O: it takes packets and the time, and answers with
//! packets to send, the next time it wants to be woken, and lease events.
//!
//! Departures from a textbook client, on purpose:
//! - An ACK is accepted from a different server identifier than the OFFER (fiber7 does this).
//! - When the lease expires without an answer, the configuration is kept (router7's promise: the ISP's server is
//!   usually back before the configuration stops working); the client starts over with DISCOVER, asking for the
//!   same address, and a new lease replaces the old one when a server answers.

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use dhcproto::{
    Decodable, Encodable,
    v4::{DhcpOption, Message, MessageType, Opcode, OptionCode},
};

use super::lease::{Lease, LeaseError};
pub(crate) use crate::uplink::lease_times::LeaseTimes;
use crate::uplink::{
    entropy::Entropy,
    protocol::{Phase, Protocol},
};

/// DISCOVER retransmissions: 4 s doubling to 64 s, ±1 s (RFC 2131 §4.1).
const FIRST_RETRANSMIT: Duration = Duration::from_secs(4);
const MAX_RETRANSMIT: Duration = Duration::from_secs(64);
/// REQUEST attempts in REQUESTING and REBOOTING before starting over.
const REQUEST_ATTEMPTS: u32 = 4;
const REBOOT_ATTEMPTS: u32 = 3;
/// RENEWING/REBINDING retransmit at half the remaining time, but not more often than this (RFC 2131 §4.4.5).
const MIN_RENEW_RETRANSMIT: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClientConfig {
    pub hardware_addr: [u8; 6],
    pub hostname: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Init,
    Selecting,
    /// Asking for the offer taken in SELECTING; it exists only in this state.
    Requesting(Offer),
    InitReboot,
    Rebooting,
    Bound,
    Renewing,
    Rebinding,
    Released,
}

impl State {
    pub(crate) fn name(self) -> &'static str {
        self.phase().label()
    }

    pub(crate) fn phase(self) -> Phase {
        match self {
            State::Init => Phase::Init,
            State::Selecting => Phase::Selecting,
            State::Requesting(_) => Phase::Requesting,
            State::InitReboot => Phase::InitReboot,
            State::Rebooting => Phase::Rebooting,
            State::Bound => Phase::Bound,
            State::Renewing => Phase::Renewing,
            State::Rebinding => Phase::Rebinding,
            State::Released => Phase::Released,
        }
    }
}

/// The offer a client requests: the address, and the server identifier to name in the REQUEST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Offer {
    pub address: Ipv4Addr,
    pub server: Option<Ipv4Addr>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Destination {
    Broadcast,
    /// Renewals go to the server that acknowledged the lease.
    Unicast(Ipv4Addr),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Transmit {
    pub payload: Vec<u8>,
    pub destination: Destination,
    /// The address to send from (RENEWING and REBINDING use the leased address; otherwise 0.0.0.0).
    pub source: Ipv4Addr,
    pub message_type: MessageType,
}

/// The client's events; a DHCPNAK is [`Event::Refused`] with the server and its message.
pub(crate) type Event = crate::uplink::protocol::Event<Transmit, Lease>;

/// Why a received packet changed nothing (logged at debug level by the driver; never fatal).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Ignored {
    #[error("not a DHCP message: {0}")]
    Malformed(String),
    #[error("not a reply (opcode {0:?})")]
    NotAReply(Opcode),
    #[error("for another transaction")]
    OtherTransaction,
    #[error("for another client")]
    OtherClient,
    #[error("a {0:?} is not expected while {1}")]
    Unexpected(MessageType, &'static str),
    #[error("unusable lease: {0}")]
    BadLease(#[from] LeaseError),
    #[error("from server {from:?} while renewing with {renewing_with}")]
    OtherServer { from: Option<Ipv4Addr>, renewing_with: Ipv4Addr },
}

pub(crate) struct Client {
    config: ClientConfig,
    entropy: Box<dyn Entropy>,
    state: State,
    xid: u32,
    attempt: u32,
    wake_at: Instant,
    /// The current lease, kept past expiry until a server answers.
    lease: Option<(Lease, LeaseTimes)>,
    /// When the REQUEST that led to the next ACK was first sent: lease times count from there (RFC 2131 §4.4.1).
    request_sent_at: Instant,
    /// The address to ask for in DISCOVER: the last one we had, unless a server refused it.
    hint: Option<Ipv4Addr>,
}

impl Client {
    /// A client starting now. With a `previous` lease (restored after a restart) it first tries INIT-REBOOT,
    /// asking to keep that address.
    pub(crate) fn new(
        config: ClientConfig,
        entropy: Box<dyn Entropy>,
        previous: Option<Lease>,
        now: Instant,
    ) -> Client {
        let state = if previous.is_some() { State::InitReboot } else { State::Init };
        let hint = previous.as_ref().map(|lease| lease.address);
        let lease = previous.map(|lease| (lease, LeaseTimes::due(now)));
        Client { config, entropy, state, xid: 0, attempt: 0, wake_at: now, lease, request_sent_at: now, hint }
    }

    #[cfg(test)]
    pub(crate) fn state(&self) -> State {
        self.state
    }

    fn renewal_timeout(&mut self, now: Instant) -> Vec<Event> {
        let Some((lease, times)) = self.lease.clone() else {
            self.restart(now);
            return self.handle_timeout(now);
        };
        if now >= times.expires_at {
            self.restart(now);
            let mut events = vec![Event::Expired];
            events.extend(self.handle_timeout(now));
            return events;
        }
        let (state, destination, until) = if now >= times.rebind_at {
            (State::Rebinding, Destination::Broadcast, times.expires_at)
        } else {
            let server = lease.server_id.map(Destination::Unicast).unwrap_or(Destination::Broadcast);
            (State::Renewing, server, times.rebind_at)
        };
        if self.state != state {
            self.start_transaction(now);
            self.state = state;
        }
        let remaining = until.saturating_duration_since(now);
        self.wake_at = now + (remaining / 2).max(MIN_RENEW_RETRANSMIT.min(remaining));
        let mut message = self.message(MessageType::Request, lease.address);
        self.add_identity(&mut message);
        vec![self.transmit(&message, destination, lease.address, MessageType::Request)]
    }

    fn start_transaction(&mut self, now: Instant) {
        self.xid = self.entropy.next_u32();
        self.attempt = 0;
        self.request_sent_at = now;
    }

    /// Exponential backoff with ±1 s of jitter.
    fn backoff(&mut self) -> Duration {
        let base = FIRST_RETRANSMIT.saturating_mul(1 << self.attempt.min(4)).min(MAX_RETRANSMIT);
        let jitter_ms = u64::from(self.entropy.next_u32() % 2001);
        (base + Duration::from_millis(jitter_ms)).saturating_sub(Duration::from_secs(1))
    }

    fn message(&self, kind: MessageType, ciaddr: Ipv4Addr) -> Message {
        let zero = Ipv4Addr::UNSPECIFIED;
        let mut message = Message::new_with_id(self.xid, ciaddr, zero, zero, zero, &self.config.hardware_addr);
        message.opts_mut().insert(DhcpOption::MessageType(kind));
        let mut client_id = vec![1];
        client_id.extend(self.config.hardware_addr);
        message.opts_mut().insert(DhcpOption::ClientIdentifier(client_id));
        message
    }

    /// Hostname, parameter request list and maximum size: what DISCOVER and REQUEST carry.
    fn add_identity(&self, message: &mut Message) {
        if let Some(hostname) = &self.config.hostname {
            message.opts_mut().insert(DhcpOption::Hostname(hostname.clone()));
        }
        message.opts_mut().insert(DhcpOption::ParameterRequestList(vec![
            OptionCode::SubnetMask,
            OptionCode::Router,
            OptionCode::DomainNameServer,
            OptionCode::DomainName,
            OptionCode::NtpServers,
            OptionCode::AddressLeaseTime,
            OptionCode::Renewal,
            OptionCode::Rebinding,
        ]));
        message.opts_mut().insert(DhcpOption::MaxMessageSize(1500));
    }

    fn discover(&mut self) -> Event {
        let mut message = self.message(MessageType::Discover, Ipv4Addr::UNSPECIFIED);
        self.add_identity(&mut message);
        // Ask for the previous address: the ISP usually gives it back, and nothing has to change.
        if let Some(address) = self.hint {
            message.opts_mut().insert(DhcpOption::RequestedIpAddress(address));
        }
        self.transmit(&message, Destination::Broadcast, Ipv4Addr::UNSPECIFIED, MessageType::Discover)
    }

    fn request_offer(&mut self, offer: Offer) -> Event {
        let mut message = self.message(MessageType::Request, Ipv4Addr::UNSPECIFIED);
        self.add_identity(&mut message);
        message.opts_mut().insert(DhcpOption::RequestedIpAddress(offer.address));
        if let Some(server) = offer.server {
            message.opts_mut().insert(DhcpOption::ServerIdentifier(server));
        }
        self.transmit(&message, Destination::Broadcast, Ipv4Addr::UNSPECIFIED, MessageType::Request)
    }

    fn reboot_request(&mut self) -> Option<Event> {
        let address = self.lease.as_ref().map(|(lease, _)| lease.address)?;
        let mut message = self.message(MessageType::Request, Ipv4Addr::UNSPECIFIED);
        self.add_identity(&mut message);
        message.opts_mut().insert(DhcpOption::RequestedIpAddress(address));
        Some(self.transmit(&message, Destination::Broadcast, Ipv4Addr::UNSPECIFIED, MessageType::Request))
    }

    fn transmit(&self, message: &Message, destination: Destination, source: Ipv4Addr, kind: MessageType) -> Event {
        // Encoding our own, well-formed message cannot fail; an empty payload would only be dropped by the driver.
        let payload = message.to_vec().unwrap_or_default();
        Event::Send(Transmit { payload, destination, source, message_type: kind })
    }
}

/// The lease in a saved ACK (`dhcp4/wire/ack`), checked like a received one.
pub(crate) fn parse_ack(bytes: &[u8]) -> Result<Lease, Ignored> {
    let clean = sanitize(bytes)?;
    let message = Message::from_bytes(&clean).map_err(|e| Ignored::Malformed(e.to_string()))?;
    match message.opts().msg_type() {
        Some(MessageType::Ack) => Ok(Lease::from_message(&message)?),
        other => Err(Ignored::Malformed(format!("a {other:?}, not an ACK"))),
    }
}

/// Options the client reads, with the lengths they must have (`0` means any non-empty length, a multiple of
/// the second number).
const KNOWN_OPTIONS: &[(u8, usize, usize)] = &[
    (1, 4, 1),  // subnet mask
    (3, 0, 4),  // routers
    (6, 0, 4),  // DNS servers
    (15, 0, 1), // domain name
    (42, 0, 4), // NTP servers
    (51, 4, 1), // lease time
    (53, 1, 1), // message type
    (54, 4, 1), // server identifier
    (56, 0, 1), // message
    (58, 4, 1), // T1
    (59, 4, 1), // T2
];

/// See [`crate::dhcp4_wire::sanitize`].
fn sanitize(payload: &[u8]) -> Result<Vec<u8>, Ignored> {
    crate::dhcp4_wire::sanitize(payload, KNOWN_OPTIONS).map_err(|e| Ignored::Malformed(e.to_string()))
}

impl Protocol for Client {
    type Transmit = Transmit;
    type Lease = Lease;
    type Ignored = Ignored;

    fn phase(&self) -> Phase {
        self.state.phase()
    }

    fn lease(&self) -> Option<(&Lease, LeaseTimes)> {
        self.lease.as_ref().map(|(lease, times)| (lease, *times))
    }

    /// When [`Client::handle_timeout`] should be called next.
    fn next_wakeup(&self) -> Instant {
        self.wake_at
    }

    fn handle_timeout(&mut self, now: Instant) -> Vec<Event> {
        if now < self.wake_at {
            return Vec::new();
        }
        let mut events = Vec::new();
        match self.state {
            State::Released => self.wake_at = now + Duration::from_secs(24 * 3600),
            State::Init => {
                self.start_transaction(now);
                self.state = State::Selecting;
                events.push(self.discover());
                self.wake_at = now + self.backoff();
            }
            State::Selecting => {
                self.attempt += 1;
                events.push(self.discover());
                self.wake_at = now + self.backoff();
            }
            State::Requesting(offer) => {
                self.attempt += 1;
                if self.attempt >= REQUEST_ATTEMPTS {
                    self.restart(now);
                    return self.handle_timeout(now);
                }
                events.push(self.request_offer(offer));
                self.wake_at = now + self.backoff();
            }
            State::InitReboot => {
                self.start_transaction(now);
                self.state = State::Rebooting;
                events.extend(self.reboot_request());
                self.wake_at = now + self.backoff();
            }
            State::Rebooting => {
                self.attempt += 1;
                if self.attempt >= REBOOT_ATTEMPTS {
                    self.restart(now);
                    return self.handle_timeout(now);
                }
                events.extend(self.reboot_request());
                self.wake_at = now + self.backoff();
            }
            State::Bound | State::Renewing | State::Rebinding => events.extend(self.renewal_timeout(now)),
        }
        events
    }

    /// Feeds a received DHCP message (the UDP payload).
    fn handle_packet(&mut self, now: Instant, payload: &[u8]) -> Result<Vec<Event>, Ignored> {
        let clean = sanitize(payload)?;
        let message = Message::from_bytes(&clean).map_err(|e| Ignored::Malformed(e.to_string()))?;
        if message.opcode() != Opcode::BootReply {
            return Err(Ignored::NotAReply(message.opcode()));
        }
        if message.xid() != self.xid {
            return Err(Ignored::OtherTransaction);
        }
        if clean[28..34] != self.config.hardware_addr {
            return Err(Ignored::OtherClient);
        }
        let kind = message.opts().msg_type().ok_or_else(|| Ignored::Malformed("no message type".into()))?;
        // A renewal is unicast to the server that granted the lease (RFC 2131 §4.4.5): only it answers, so an ACK
        // or NAK naming another server is someone else on the link.
        if self.state == State::Renewing
            && let Some(renewing_with) = self.lease.as_ref().and_then(|(lease, _)| lease.server_id)
        {
            let from = match message.opts().get(OptionCode::ServerIdentifier) {
                Some(DhcpOption::ServerIdentifier(id)) => Some(*id),
                _ => None,
            };
            if from != Some(renewing_with) {
                return Err(Ignored::OtherServer { from, renewing_with });
            }
        }
        match (kind, self.state) {
            (MessageType::Offer, State::Selecting) => {
                // Checked like an ACK, so an unusable offer is never requested.
                let lease = Lease::from_message(&message)?;
                let server = match message.opts().get(OptionCode::ServerIdentifier) {
                    Some(DhcpOption::ServerIdentifier(id)) => Some(*id),
                    _ => None,
                };
                let offer = Offer { address: lease.address, server };
                self.state = State::Requesting(offer);
                self.attempt = 0;
                self.request_sent_at = now;
                self.wake_at = now + self.backoff();
                Ok(vec![self.request_offer(offer)])
            }
            (MessageType::Ack, State::Requesting(_) | State::Rebooting | State::Renewing | State::Rebinding) => {
                let lease = Lease::from_message(&message)?;
                let start = self.request_sent_at;
                let times = LeaseTimes {
                    bound_at: start,
                    renew_at: start + lease.t1,
                    rebind_at: start + lease.t2,
                    expires_at: start + lease.lease_time,
                };
                self.hint = Some(lease.address);
                self.lease = Some((lease.clone(), times));
                self.state = State::Bound;
                self.wake_at = times.renew_at.max(now);
                Ok(vec![Event::Bound(lease)])
            }
            (MessageType::Nak, State::Requesting(_) | State::Rebooting | State::Renewing | State::Rebinding) => {
                let server = match message.opts().get(OptionCode::ServerIdentifier) {
                    Some(DhcpOption::ServerIdentifier(id)) => id.to_string(),
                    _ => "a server".to_string(),
                };
                let text = match message.opts().get(OptionCode::Message) {
                    Some(DhcpOption::Message(text)) => format!("{server} refused our request ({text:?})"),
                    _ => format!("{server} refused our request"),
                };
                // The address was refused: do not ask for it again. Its configuration stays until a new lease
                // replaces it.
                self.hint = None;
                self.restart(now);
                Ok(vec![Event::Refused(text)])
            }
            (kind, state) => Err(Ignored::Unexpected(kind, state.name())),
        }
    }

    /// Gives the lease back (RELEASE to the server) and stays idle until [`Client::restart`].
    fn release(&mut self, now: Instant) -> Vec<Event> {
        let mut events = Vec::new();
        if let Some((lease, _)) = self.lease.take() {
            self.start_transaction(now);
            let mut message = self.message(MessageType::Release, lease.address);
            if let Some(server) = lease.server_id {
                message.opts_mut().insert(DhcpOption::ServerIdentifier(server));
            }
            let destination = lease.server_id.map(Destination::Unicast).unwrap_or(Destination::Broadcast);
            events.push(self.transmit(&message, destination, lease.address, MessageType::Release));
        }
        self.state = State::Released;
        self.wake_at = now + Duration::from_secs(24 * 3600);
        events
    }

    /// Starts over from INIT now (after a NAK, a failed request, expiry, or to leave RELEASED).
    fn restart(&mut self, now: Instant) {
        self.state = State::Init;
        self.attempt = 0;
        self.wake_at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uplink::{entropy::Sequence, pcap};

    const FIBER7_MAC: [u8; 6] = [0xd8, 0x58, 0xd7, 0x00, 0x4e, 0xdf];
    const FIBER7_XID: u32 = 0x7708d724;

    fn fiber7_replies() -> (Vec<u8>, Vec<u8>) {
        let capture = pcap::udp_datagrams(include_bytes!("../../../testdata/fiber7/dhcp4-fiber7.pcap"));
        assert_eq!(capture.len(), 2, "OFFER and ACK");
        for datagram in &capture {
            assert_eq!((datagram.source_port, datagram.destination_port), (67, 68));
            // Relayed: from fiber7's relay to the offered address, which the client does not have yet.
            assert_eq!(datagram.source, std::net::IpAddr::from([212, 51, 156, 1]));
            assert_eq!(datagram.destination, std::net::IpAddr::from([85, 195, 207, 62]));
        }
        (capture[0].payload.clone(), capture[1].payload.clone())
    }

    fn client(previous: Option<Lease>, now: Instant) -> Client {
        let config = ClientConfig { hardware_addr: FIBER7_MAC, hostname: Some("router7".into()) };
        Client::new(config, Box::new(Sequence::new(vec![FIBER7_XID])), previous, now)
    }

    fn sent(events: &[Event]) -> (Message, Transmit) {
        let transmit = events
            .iter()
            .find_map(|e| match e {
                Event::Send(t) => Some(t.clone()),
                _ => None,
            })
            .expect("something is sent");
        (Message::from_bytes(&transmit.payload).expect("our packets decode"), transmit)
    }

    fn option(message: &Message, code: OptionCode) -> Option<DhcpOption> {
        message.opts().get(code).cloned()
    }

    #[test]
    fn replays_fiber7_offer_and_ack_from_different_server_identifiers() {
        let (offer, ack) = fiber7_replies();
        let t0 = Instant::now();
        let mut client = client(None, t0);

        let (discover, transmit) = sent(&client.handle_timeout(t0));
        assert_eq!(discover.opts().msg_type(), Some(MessageType::Discover));
        assert_eq!(transmit.destination, Destination::Broadcast);
        assert_eq!(option(&discover, OptionCode::Hostname), Some(DhcpOption::Hostname("router7".into())));
        let mut client_id = vec![1];
        client_id.extend(FIBER7_MAC);
        assert_eq!(option(&discover, OptionCode::ClientIdentifier), Some(DhcpOption::ClientIdentifier(client_id)));
        assert_eq!(client.state(), State::Selecting);

        let t1 = t0 + Duration::from_millis(20);
        let (request, transmit) = sent(&client.handle_packet(t1, &offer).expect("the offer is taken"));
        assert_eq!(request.opts().msg_type(), Some(MessageType::Request));
        assert_eq!(transmit.destination, Destination::Broadcast);
        assert_eq!(
            option(&request, OptionCode::ServerIdentifier),
            Some(DhcpOption::ServerIdentifier(Ipv4Addr::new(77, 109, 140, 123)))
        );
        assert_eq!(
            option(&request, OptionCode::RequestedIpAddress),
            Some(DhcpOption::RequestedIpAddress(Ipv4Addr::new(85, 195, 207, 62)))
        );

        let events = client.handle_packet(t1 + Duration::from_millis(5), &ack).expect("the ACK is taken");
        let Some(Event::Bound(lease)) = events.first() else { panic!("not bound: {events:?}") };
        assert_eq!(lease.address, Ipv4Addr::new(85, 195, 207, 62));
        assert_eq!(lease.prefix_len, 25);
        assert_eq!(lease.gateway, Some(Ipv4Addr::new(85, 195, 207, 1)));
        assert_eq!(lease.dns, vec![Ipv4Addr::new(77, 109, 128, 2), Ipv4Addr::new(213, 144, 129, 20)]);
        assert_eq!(lease.server_id, Some(Ipv4Addr::new(213, 144, 129, 5)), "the ACK's server, not the OFFER's");
        assert_eq!(lease.lease_time, Duration::from_secs(1608));
        assert_eq!((lease.t1, lease.t2), (Duration::from_secs(804), Duration::from_secs(1407)));
        assert_eq!(client.state(), State::Bound);
        // Timers count from when the REQUEST was sent.
        assert_eq!(client.next_wakeup(), t1 + Duration::from_secs(804));

        // T1: a unicast REQUEST to the server that acknowledged, from the leased address.
        let renew_at = client.next_wakeup();
        assert!(client.handle_timeout(renew_at - Duration::from_secs(1)).is_empty(), "nothing before T1");
        let (renew, transmit) = sent(&client.handle_timeout(renew_at));
        assert_eq!(client.state(), State::Renewing);
        assert_eq!(transmit.destination, Destination::Unicast(Ipv4Addr::new(213, 144, 129, 5)));
        assert_eq!(renew.ciaddr(), Ipv4Addr::new(85, 195, 207, 62));
        assert_eq!(option(&renew, OptionCode::ServerIdentifier), None, "RFC 2131: no server id when renewing");
        assert_eq!(option(&renew, OptionCode::RequestedIpAddress), None);

        // No answer until T2: REBINDING broadcasts.
        let rebind_at = t1 + Duration::from_secs(1407);
        let mut now = renew_at;
        while client.state() == State::Renewing {
            now = client.next_wakeup();
            let events = client.handle_timeout(now);
            assert!(!events.is_empty());
        }
        assert_eq!(client.state(), State::Rebinding);
        assert!(now >= rebind_at);
        let (_, transmit) = sent(
            &client
                .handle_timeout(now + Duration::ZERO)
                .into_iter()
                .chain(client.handle_timeout(client.next_wakeup()))
                .collect::<Vec<_>>(),
        );
        assert_eq!(transmit.destination, Destination::Broadcast);

        // Expiry keeps the lease (and so its configuration) and starts over, asking for the same address.
        let expires_at = t1 + Duration::from_secs(1608);
        let mut expired = Vec::new();
        while client.state() == State::Rebinding {
            expired = client.handle_timeout(client.next_wakeup());
        }
        assert!(client.next_wakeup() >= expires_at || expired.contains(&Event::Expired));
        assert!(expired.contains(&Event::Expired), "{expired:?}");
        let (discover, _) = sent(&expired);
        assert_eq!(discover.opts().msg_type(), Some(MessageType::Discover));
        assert_eq!(
            option(&discover, OptionCode::RequestedIpAddress),
            Some(DhcpOption::RequestedIpAddress(Ipv4Addr::new(85, 195, 207, 62)))
        );
        assert!(client.lease().is_some(), "the old lease is kept past expiry");
    }

    /// The fiber7 ACK, re-addressed to transaction `xid`, from `server`, with `domain` as option 15.
    fn ack_for(xid: u32, server: Ipv4Addr, domain: &[u8]) -> Vec<u8> {
        let (_, ack) = fiber7_replies();
        let mut message = Message::from_bytes(&ack).expect("decodes");
        message.set_xid(xid);
        message.opts_mut().insert(DhcpOption::ServerIdentifier(server));
        message.opts_mut().insert(DhcpOption::DomainName("x".repeat(domain.len())));
        let mut bytes = message.to_vec().expect("encodes");
        let at = (240..bytes.len()).find(|&i| bytes[i] == 15 && usize::from(bytes[i + 1]) == domain.len());
        let at = at.expect("option 15");
        bytes[at + 2..at + 2 + domain.len()].copy_from_slice(domain);
        bytes
    }

    #[test]
    fn while_renewing_only_the_leases_server_is_heard_and_a_bad_domain_name_costs_only_itself() {
        let (offer, ack) = fiber7_replies();
        let t0 = Instant::now();
        let mut client = client(None, t0);
        client.handle_timeout(t0);
        client.handle_packet(t0, &offer).expect("offer");
        client.handle_packet(t0, &ack).expect("ack");
        let server = Ipv4Addr::new(213, 144, 129, 5);
        let (renew, _) = sent(&client.handle_timeout(client.next_wakeup()));
        assert_eq!(client.state(), State::Renewing);

        let spoofed = ack_for(renew.xid(), Ipv4Addr::new(198, 51, 100, 66), b"evil");
        let ignored = client.handle_packet(t0, &spoofed).expect_err("another server");
        assert_eq!(
            ignored,
            Ignored::OtherServer { from: Some(Ipv4Addr::new(198, 51, 100, 66)), renewing_with: server }
        );
        assert_eq!(client.state(), State::Renewing);

        // The real server, with a domain name that is not UTF-8: the lease is renewed, without a domain.
        let genuine = ack_for(renew.xid(), server, &[0xff, 0xfe, b'x']);
        let events = client.handle_packet(t0, &genuine).expect("the server's ACK");
        let Some(Event::Bound(lease)) = events.first() else { panic!("not renewed: {events:?}") };
        assert_eq!((lease.address, lease.domain.as_deref()), (Ipv4Addr::new(85, 195, 207, 62), None));
        assert_eq!(client.state(), State::Bound);
    }

    #[test]
    fn a_restored_lease_starts_with_init_reboot() {
        let (_, ack) = fiber7_replies();
        let previous = Lease::from_message(&Message::from_bytes(&ack).expect("decodes")).expect("valid");
        let t0 = Instant::now();
        let mut client = client(Some(previous.clone()), t0);
        assert_eq!(client.state(), State::InitReboot);
        let (request, transmit) = sent(&client.handle_timeout(t0));
        assert_eq!(client.state(), State::Rebooting);
        assert_eq!(transmit.destination, Destination::Broadcast);
        assert_eq!(request.opts().msg_type(), Some(MessageType::Request));
        assert_eq!(
            option(&request, OptionCode::RequestedIpAddress),
            Some(DhcpOption::RequestedIpAddress(previous.address))
        );
        assert_eq!(option(&request, OptionCode::ServerIdentifier), None);
        let events = client.handle_packet(t0, &ack).expect("ACK");
        assert_eq!(events, vec![Event::Bound(previous)]);

        // Without an answer, INIT-REBOOT gives up after a few tries and discovers.
        let mut client = client_with_previous(t0);
        let mut kinds = Vec::new();
        for _ in 0..5 {
            let (message, _) = sent(&client.handle_timeout(client.next_wakeup()));
            kinds.push(message.opts().msg_type());
        }
        assert_eq!(kinds.iter().filter(|k| **k == Some(MessageType::Request)).count(), 3);
        assert_eq!(kinds.last(), Some(&Some(MessageType::Discover)));
    }

    fn client_with_previous(now: Instant) -> Client {
        let (_, ack) = fiber7_replies();
        let previous = Lease::from_message(&Message::from_bytes(&ack).expect("decodes")).expect("valid");
        client(Some(previous), now)
    }

    #[test]
    fn a_nak_starts_over_without_asking_for_the_refused_address() {
        let (offer, _) = fiber7_replies();
        let t0 = Instant::now();
        let mut client = client_with_previous(t0);
        client.restart(t0);
        client.handle_timeout(t0);
        client.handle_packet(t0, &offer).expect("offer");
        let mut nak = Message::from_bytes(&offer).expect("decodes");
        nak.set_yiaddr(Ipv4Addr::UNSPECIFIED);
        nak.opts_mut().clear();
        nak.opts_mut().insert(DhcpOption::MessageType(MessageType::Nak));
        nak.opts_mut().insert(DhcpOption::Message("address not available".into()));
        let events = client.handle_packet(t0, &nak.to_vec().expect("encodes")).expect("NAK");
        assert!(matches!(&events[..], [Event::Refused(text)] if text.contains("(\"address not available\")")));
        assert_eq!(client.state(), State::Init);
        let (discover, _) = sent(&client.handle_timeout(client.next_wakeup()));
        assert_eq!(option(&discover, OptionCode::RequestedIpAddress), None);
    }

    #[test]
    fn replies_for_someone_else_or_out_of_turn_are_ignored() {
        let (offer, ack) = fiber7_replies();
        let t0 = Instant::now();
        let mut client = client(None, t0);
        client.handle_timeout(t0);
        assert_eq!(client.handle_packet(t0, &ack), Err(Ignored::Unexpected(MessageType::Ack, "selecting")));
        let mut other = Message::from_bytes(&offer).expect("decodes");
        other.set_xid(1);
        assert_eq!(client.handle_packet(t0, &other.to_vec().expect("encodes")), Err(Ignored::OtherTransaction));
        let mut other = Message::from_bytes(&offer).expect("decodes");
        other.set_chaddr(&[2, 0, 0, 0, 0, 9]);
        assert_eq!(client.handle_packet(t0, &other.to_vec().expect("encodes")), Err(Ignored::OtherClient));
        let mut zero = Message::from_bytes(&offer).expect("decodes");
        zero.set_yiaddr(Ipv4Addr::UNSPECIFIED);
        assert!(matches!(client.handle_packet(t0, &zero.to_vec().expect("encodes")), Err(Ignored::BadLease(_))));
        assert_eq!(client.state(), State::Selecting, "nothing changed");
    }

    #[test]
    fn malformed_packets_are_ignored_never_a_panic() {
        let (offer, ack) = fiber7_replies();
        let t0 = Instant::now();
        let mut client = client(None, t0);
        client.handle_timeout(t0);
        client.handle_packet(t0, &offer).expect("offer");
        // Anything cut before the End option (the capture has padding after it). The options are 53, 54, 51,
        // 1, 3 and 6, then End.
        let lengths: usize = [1, 4, 4, 4, 4, 8].iter().map(|len| 2 + len).sum();
        let end = 240 + lengths;
        assert_eq!(ack[end], 255, "the End option");
        for len in 0..=end {
            assert!(client.handle_packet(t0, &ack[..len]).is_err(), "accepted {len} of {} bytes", ack.len());
        }
        assert!(matches!(client.state(), State::Requesting(_)), "a truncated ACK is not an ACK");

        // Random corruption of the ACK: whatever is accepted must be a usable lease.
        let mut seed = 0x2545_f491_u32;
        for _ in 0..20_000 {
            let mut bytes = ack.clone();
            for _ in 0..1 + (seed % 4) {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let at = seed as usize % bytes.len();
                bytes[at] = (seed >> 8) as u8;
            }
            let mut probe = client_in_requesting(&offer, t0);
            if let Ok(events) = probe.handle_packet(t0, &bytes) {
                for event in events {
                    if let Event::Bound(lease) = event {
                        assert!(super::super::lease::is_usable_host(lease.address), "{lease:?}");
                        assert!((1..=32).contains(&lease.prefix_len), "{lease:?}");
                        assert!(!lease.lease_time.is_zero());
                    }
                }
            }
        }
    }

    /// The fiber7 ACK with `option` (code, length, value) inserted before its options.
    fn ack_with(option: &[u8]) -> Vec<u8> {
        let (_, ack) = fiber7_replies();
        let mut bytes = ack[..240].to_vec();
        bytes.extend_from_slice(option);
        bytes.extend_from_slice(&ack[240..]);
        bytes
    }

    #[test]
    fn options_with_impossible_lengths_are_refused_and_unknown_ones_are_skipped() {
        let (offer, _) = fiber7_replies();
        let t0 = Instant::now();
        // A subnet mask of three bytes, a lease time of two: the whole message is refused.
        for option in [&[1u8, 3, 255, 255, 255][..], &[51, 2, 0, 10], &[6, 5, 1, 2, 3, 4, 5], &[3, 0]] {
            let mut client = client_in_requesting(&offer, t0);
            let result = client.handle_packet(t0, &ack_with(option));
            assert!(matches!(result, Err(Ignored::Malformed(_))), "{option:?}: {result:?}");
            assert!(matches!(client.state(), State::Requesting(_)));
        }
        // A classless static route with a /40 makes dhcproto panic; the client never hands it over.
        let mut client = client_in_requesting(&offer, t0);
        let events = client.handle_packet(t0, &ack_with(&[121, 6, 40, 10, 0, 0, 0, 1])).expect("still an ACK");
        assert!(matches!(events[..], [Event::Bound(_)]));
        // A length running past the end.
        let mut client = client_in_requesting(&offer, t0);
        let (_, ack) = fiber7_replies();
        let mut bytes = ack[..240].to_vec();
        bytes.extend_from_slice(&[53, 1, 5, 6, 200, 1, 2]);
        assert!(matches!(client.handle_packet(t0, &bytes), Err(Ignored::Malformed(_))));
    }

    fn client_in_requesting(offer: &[u8], now: Instant) -> Client {
        let mut client = client(None, now);
        client.handle_timeout(now);
        client.handle_packet(now, offer).expect("offer");
        client
    }

    #[test]
    fn retransmissions_back_off_exponentially_with_jitter() {
        let t0 = Instant::now();
        let config = ClientConfig { hardware_addr: FIBER7_MAC, hostname: None };
        let mut client = Client::new(config, Box::new(Sequence::new(vec![1000, 0, 2000])), None, t0);
        let mut now = t0;
        let mut gaps = Vec::new();
        for _ in 0..7 {
            client.handle_timeout(now);
            let next = client.next_wakeup();
            gaps.push(next.duration_since(now).as_secs_f64().round() as u64);
            now = next;
        }
        // 4, 8, 16, 32, 64, 64 s, each within ±1 s.
        for (gap, base) in gaps.iter().zip([4, 8, 16, 32, 64, 64, 64]) {
            assert!(gap.abs_diff(base) <= 1, "{gaps:?}");
        }
    }
}
