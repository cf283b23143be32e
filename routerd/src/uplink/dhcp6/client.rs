//! The DHCPv6 client state machine (RFC 8415 §18), without I/O: Solicit → Advertise → Request → Reply, then
//! Renew at T1 with the same server and Rebind at T2 with any (router7 solicits from scratch every time).
//!
//! Choices within the RFC: the first usable Advertise is taken (no collection window); Server Unicast is
//! ignored (always multicast); Reconfigure is ignored; Solicit retransmissions are capped at 120 s instead of
//! SOL_MAX_RT's 3600 s, so a router whose ISP was down is back within two minutes. When every binding's valid
//! lifetime has run out without an answer, the configuration is kept and the client solicits again (router7's
//! promise), asking for the same prefix.

use std::{
    net::Ipv6Addr,
    time::{Duration, Instant},
};

use dhcproto::{
    Encodable,
    v6::{DhcpOption, DhcpOptions, IAAddr, IANA, IAPD, IAPrefix, Message, MessageType, ORO, OptionCode},
};

use super::{
    lease::{Lease, LeaseError},
    wire::{self, ServerMessage, WireError},
};
pub(crate) use crate::uplink::lease_times::LeaseTimes;
use crate::uplink::{
    entropy::Entropy,
    protocol::{Phase, Protocol},
};

const SOL_TIMEOUT: Duration = Duration::from_secs(1);
const SOL_MAX_RT: Duration = Duration::from_secs(120);
const REQ_TIMEOUT: Duration = Duration::from_secs(1);
const REQ_MAX_RT: Duration = Duration::from_secs(30);
const REQ_MAX_RC: u32 = 10;
const REN_TIMEOUT: Duration = Duration::from_secs(10);
const REN_MAX_RT: Duration = Duration::from_secs(600);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClientConfig {
    pub duid: Vec<u8>,
    /// IAID of the IA_NA to ask for; `None` asks for no address.
    pub ia_na: Option<u32>,
    /// IAID of the IA_PD to ask for; `None` asks for no prefix.
    pub ia_pd: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Init,
    Soliciting,
    Requesting,
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
            State::Soliciting => Phase::Soliciting,
            State::Requesting => Phase::Requesting,
            State::Bound => Phase::Bound,
            State::Renewing => Phase::Renewing,
            State::Rebinding => Phase::Rebinding,
            State::Released => Phase::Released,
        }
    }
}

/// The state with what belongs to it: the Advertise being requested exists only in Requesting.
#[derive(Clone, Debug)]
enum Step {
    Init,
    Soliciting,
    Requesting(Box<ServerMessage>),
    Bound,
    Renewing,
    Rebinding,
    Released,
}

impl Step {
    fn kind(&self) -> State {
        match self {
            Step::Init => State::Init,
            Step::Soliciting => State::Soliciting,
            Step::Requesting(_) => State::Requesting,
            Step::Bound => State::Bound,
            Step::Renewing => State::Renewing,
            Step::Rebinding => State::Rebinding,
            Step::Released => State::Released,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Transmit {
    pub payload: Vec<u8>,
    pub message_type: &'static str,
}

/// The client's events: [`Event::Send`] goes to All_DHCP_Relay_Agents_and_Servers (ff02::1:2) on the uplink;
/// [`Event::Refused`] is a server that answered but could not help (NoPrefixAvail, NoAddrsAvail, …).
pub(crate) type Event = crate::uplink::protocol::Event<Transmit, Lease>;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Ignored {
    #[error("malformed: {0}")]
    Malformed(#[from] WireError),
    #[error("for another transaction")]
    OtherTransaction,
    #[error("message type {0} is not expected while {1}")]
    Unexpected(u8, &'static str),
    #[error("{0}")]
    Lease(#[from] LeaseError),
}

pub(crate) struct Client {
    config: ClientConfig,
    entropy: Box<dyn Entropy>,
    step: Step,
    xid: u32,
    retransmit: Duration,
    attempts: u32,
    transaction_start: Instant,
    wake_at: Instant,
    lease: Option<(Lease, LeaseTimes)>,
    /// The prefix to ask for again (fiber7 binds a /48 to the DUID; a hint keeps it stable elsewhere too).
    hint: Option<(Ipv6Addr, u8)>,
    last_problem: Option<String>,
}

impl Client {
    pub(crate) fn new(
        config: ClientConfig,
        entropy: Box<dyn Entropy>,
        previous: Option<Lease>,
        now: Instant,
    ) -> Client {
        let hint = previous.as_ref().and_then(|l| l.prefixes.first()).map(|p| (p.prefix, p.length));
        let lease = previous.map(|lease| (lease, LeaseTimes::due(now)));
        Client {
            config,
            entropy,
            step: Step::Init,
            xid: 0,
            retransmit: SOL_TIMEOUT,
            attempts: 0,
            transaction_start: now,
            wake_at: now,
            lease,
            hint,
            last_problem: None,
        }
    }

    #[cfg(test)]
    pub(crate) fn state(&self) -> State {
        self.step.kind()
    }

    fn renewal_timeout(&mut self, now: Instant) -> Vec<Event> {
        let Some(times) = self.lease.as_ref().map(|(_, times)| *times) else {
            self.restart(now);
            return self.handle_timeout(now);
        };
        if now >= times.expires_at {
            self.restart(now);
            let mut events = vec![Event::Expired];
            events.extend(self.handle_timeout(now));
            return events;
        }
        let (state, until) = if now >= times.rebind_at {
            (State::Rebinding, times.expires_at)
        } else {
            (State::Renewing, times.rebind_at)
        };
        if self.step.kind() != state {
            self.start_transaction(now, REN_TIMEOUT);
            self.step = if state == State::Rebinding { Step::Rebinding } else { Step::Renewing };
        } else {
            self.back_off(REN_MAX_RT);
        }
        self.wake_at = (now + self.retransmit).min(until);
        let kind = if state == State::Renewing { MessageType::Renew } else { MessageType::Rebind };
        vec![self.renewal(kind, now)]
    }

    /// Reports a problem once per distinct message, so a server that keeps saying NoPrefixAvail does not flood
    /// the log.
    fn problem(&mut self, error: LeaseError) -> Vec<Event> {
        let text = error.to_string();
        if self.last_problem.as_deref() == Some(text.as_str()) {
            return Vec::new();
        }
        self.last_problem = Some(text.clone());
        vec![Event::Refused(text)]
    }

    fn start_transaction(&mut self, now: Instant, initial: Duration) {
        self.xid = self.entropy.next_u32() & 0x00ff_ffff;
        self.transaction_start = now;
        self.attempts = 0;
        self.retransmit = initial;
    }

    /// A number in [-1, 1].
    fn random_fraction(&mut self) -> f64 {
        f64::from(self.entropy.next_u32() % 2001) / 1000.0 - 1.0
    }

    /// RT = 2·RTprev + RAND·RTprev, RAND in ±0.1, capped at `max` (RFC 8415 §15).
    fn back_off(&mut self, max: Duration) {
        let factor = 2.0 + self.random_fraction() / 10.0;
        self.retransmit = self.retransmit.mul_f64(factor).min(max);
    }

    fn message(&self, kind: MessageType, now: Instant) -> Message {
        let mut message = Message::new_with_id(kind, self.xid.to_be_bytes()[1..].try_into().unwrap_or_default());
        let opts = message.opts_mut();
        opts.insert(DhcpOption::ClientId(self.config.duid.clone()));
        // Hundredths of a second since the transaction started, saturating (RFC 8415 §21.9).
        let elapsed = now.saturating_duration_since(self.transaction_start).as_millis() / 10;
        opts.insert(DhcpOption::ElapsedTime(u16::try_from(elapsed).unwrap_or(u16::MAX)));
        opts.insert(DhcpOption::ORO(ORO {
            opts: vec![
                OptionCode::DomainNameServers,
                OptionCode::DomainSearchList,
                OptionCode::NtpServer,
                OptionCode::SntpServers,
            ],
        }));
        message
    }

    fn ia_na(&self, addresses: &[Ipv6Addr]) -> Option<DhcpOption> {
        let id = self.config.ia_na?;
        let mut opts = DhcpOptions::new();
        for addr in addresses {
            opts.insert(DhcpOption::IAAddr(IAAddr {
                addr: *addr,
                preferred_life: 0,
                valid_life: 0,
                opts: DhcpOptions::new(),
            }));
        }
        Some(DhcpOption::IANA(IANA { id, t1: 0, t2: 0, opts }))
    }

    fn ia_pd(&self, prefixes: &[(Ipv6Addr, u8)]) -> Option<DhcpOption> {
        let id = self.config.ia_pd?;
        let mut opts = DhcpOptions::new();
        for (prefix, length) in prefixes {
            opts.insert(DhcpOption::IAPrefix(IAPrefix {
                preferred_lifetime: 0,
                valid_lifetime: 0,
                prefix_len: *length,
                prefix_ip: *prefix,
                opts: DhcpOptions::new(),
            }));
        }
        Some(DhcpOption::IAPD(IAPD { id, t1: 0, t2: 0, opts }))
    }

    fn encode(message: &Message, kind: &'static str) -> Event {
        Event::Send(Transmit { payload: message.to_vec().unwrap_or_default(), message_type: kind })
    }

    fn solicit(&mut self, now: Instant) -> Event {
        let mut message = self.message(MessageType::Solicit, now);
        let hint: Vec<(Ipv6Addr, u8)> = self.hint.into_iter().collect();
        for option in [self.ia_na(&[]), self.ia_pd(&hint)].into_iter().flatten() {
            message.opts_mut().insert(option);
        }
        Self::encode(&message, "Solicit")
    }

    fn request(&mut self, now: Instant) -> Event {
        let mut message = self.message(MessageType::Request, now);
        if let Step::Requesting(advertise) = &self.step {
            if let Some(server_id) = &advertise.server_id {
                message.opts_mut().insert(DhcpOption::ServerId(server_id.clone()));
            }
            let addresses: Vec<Ipv6Addr> = advertise
                .ia_na
                .iter()
                .filter(|ia| Some(ia.iaid) == self.config.ia_na)
                .flat_map(|ia| ia.addresses.iter().map(|a| a.address))
                .collect();
            let prefixes: Vec<(Ipv6Addr, u8)> = advertise
                .ia_pd
                .iter()
                .filter(|ia| Some(ia.iaid) == self.config.ia_pd)
                .flat_map(|ia| ia.prefixes.iter().map(|p| (p.prefix, p.length)))
                .collect();
            // Ask for the IAs the server can serve; an IA_PD it left out is not asked for again here.
            let wants_na = advertise.ia_na.iter().any(|ia| Some(ia.iaid) == self.config.ia_na);
            let wants_pd = advertise.ia_pd.iter().any(|ia| Some(ia.iaid) == self.config.ia_pd);
            if wants_na && let Some(option) = self.ia_na(&addresses) {
                message.opts_mut().insert(option);
            }
            if wants_pd && let Some(option) = self.ia_pd(&prefixes) {
                message.opts_mut().insert(option);
            }
        }
        Self::encode(&message, "Request")
    }

    /// Renew (with the server's identifier), Rebind (without) or Release, carrying the current bindings.
    fn renewal(&mut self, kind: MessageType, now: Instant) -> Event {
        let mut message = self.message(kind, now);
        let name = match kind {
            MessageType::Renew => "Renew",
            MessageType::Rebind => "Rebind",
            _ => "Release",
        };
        if let Some((lease, _)) = &self.lease {
            if kind != MessageType::Rebind {
                message.opts_mut().insert(DhcpOption::ServerId(lease.server_id.clone()));
            }
            let addresses: Vec<Ipv6Addr> = lease.address.iter().map(|a| a.address).collect();
            let prefixes: Vec<(Ipv6Addr, u8)> = lease.prefixes.iter().map(|p| (p.prefix, p.length)).collect();
            if !addresses.is_empty()
                && let Some(option) = self.ia_na(&addresses)
            {
                message.opts_mut().insert(option);
            }
            if !prefixes.is_empty()
                && let Some(option) = self.ia_pd(&prefixes)
            {
                message.opts_mut().insert(option);
            }
        }
        Self::encode(&message, name)
    }
}

impl Protocol for Client {
    type Transmit = Transmit;
    type Lease = Lease;
    type Ignored = Ignored;

    fn phase(&self) -> Phase {
        self.step.kind().phase()
    }

    fn lease(&self) -> Option<(&Lease, LeaseTimes)> {
        self.lease.as_ref().map(|(lease, times)| (lease, *times))
    }

    fn next_wakeup(&self) -> Instant {
        self.wake_at
    }

    fn handle_timeout(&mut self, now: Instant) -> Vec<Event> {
        if now < self.wake_at {
            return Vec::new();
        }
        match self.step.kind() {
            State::Released => {
                self.wake_at = now + Duration::from_secs(24 * 3600);
                Vec::new()
            }
            State::Init => {
                self.start_transaction(now, SOL_TIMEOUT);
                // The first Solicit waits a little longer than IRT, never shorter (RFC 8415 §15).
                self.retransmit = SOL_TIMEOUT + SOL_TIMEOUT.mul_f64(self.random_fraction().abs() / 10.0);
                self.step = Step::Soliciting;
                self.wake_at = now + self.retransmit;
                vec![self.solicit(now)]
            }
            State::Soliciting => {
                self.back_off(SOL_MAX_RT);
                self.wake_at = now + self.retransmit;
                vec![self.solicit(now)]
            }
            State::Requesting => {
                self.attempts += 1;
                if self.attempts >= REQ_MAX_RC {
                    self.restart(now);
                    return self.handle_timeout(now);
                }
                self.back_off(REQ_MAX_RT);
                self.wake_at = now + self.retransmit;
                vec![self.request(now)]
            }
            State::Bound | State::Renewing | State::Rebinding => self.renewal_timeout(now),
        }
    }

    /// Feeds a received DHCPv6 message (the UDP payload from port 547).
    fn handle_packet(&mut self, now: Instant, payload: &[u8]) -> Result<Vec<Event>, Ignored> {
        let message = wire::parse(payload)?;
        if message.message_type == wire::RECONFIGURE {
            // Without authentication keys a Reconfigure cannot be trusted; the client renews on its own schedule.
            return Err(Ignored::Unexpected(message.message_type, self.step.kind().name()));
        }
        if message.transaction_id != self.xid {
            return Err(Ignored::OtherTransaction);
        }
        match (message.message_type, self.step.kind()) {
            (wire::ADVERTISE, State::Soliciting) => {
                match Lease::from_message(&message, &self.config.duid, self.config.ia_na, self.config.ia_pd) {
                    Ok(_) => {}
                    Err(error @ (LeaseError::Empty(_) | LeaseError::Refused(_))) => return Ok(self.problem(error)),
                    Err(error) => return Err(error.into()),
                }
                self.step = Step::Requesting(Box::new(message));
                self.start_transaction(now, REQ_TIMEOUT);
                self.wake_at = now + self.retransmit;
                Ok(vec![self.request(now)])
            }
            (wire::REPLY, State::Requesting | State::Renewing | State::Rebinding) => {
                let lease = match Lease::from_message(&message, &self.config.duid, self.config.ia_na, self.config.ia_pd)
                {
                    Ok(lease) => lease,
                    Err(error @ (LeaseError::Empty(_) | LeaseError::Refused(_))) => {
                        // NoBinding after a Renew, NoPrefixAvail after a Request …: start over and keep asking.
                        let mut events = self.problem(error);
                        self.restart(now);
                        self.wake_at = now + SOL_TIMEOUT;
                        events.extend(self.handle_timeout(now));
                        return Ok(events);
                    }
                    Err(error) => return Err(error.into()),
                };
                let start = self.transaction_start;
                let times = LeaseTimes {
                    bound_at: start,
                    renew_at: start + lease.t1,
                    rebind_at: start + lease.t2,
                    expires_at: start + lease.valid,
                };
                self.hint = lease.prefixes.first().map(|p| (p.prefix, p.length)).or(self.hint);
                self.lease = Some((lease.clone(), times));
                self.step = Step::Bound;
                self.last_problem = None;
                self.wake_at = times.renew_at.max(now);
                Ok(vec![Event::Bound(lease)])
            }
            (kind, state) => Err(Ignored::Unexpected(kind, state.name())),
        }
    }

    /// Releases the bindings and stays idle until [`Client::restart`].
    fn release(&mut self, now: Instant) -> Vec<Event> {
        let mut events = Vec::new();
        if self.lease.is_some() {
            self.start_transaction(now, REQ_TIMEOUT);
            events.push(self.renewal(MessageType::Release, now));
            self.lease = None;
        }
        self.step = Step::Released;
        self.wake_at = now + Duration::from_secs(24 * 3600);
        events
    }

    fn restart(&mut self, now: Instant) {
        self.step = Step::Init;
        self.wake_at = now;
    }
}

#[cfg(test)]
mod tests {
    use dhcproto::{Decodable, v6::StatusCode};

    use super::*;
    use crate::uplink::{entropy::Sequence, pcap};

    const FIBER7_DUID: [u8; 12] = [0x00, 0x0a, 0x00, 0x03, 0x00, 0x01, 0x4c, 0x5e, 0x0c, 0x43, 0xbf, 0x39];

    fn replies(capture: &[u8]) -> Vec<Vec<u8>> {
        let datagrams = pcap::udp_datagrams(capture);
        assert!(datagrams.iter().all(|d| (d.source_port, d.destination_port) == (547, 546)));
        datagrams.into_iter().map(|d| d.payload).collect()
    }

    fn sent(events: &[Event]) -> Message {
        let payload = events
            .iter()
            .find_map(|e| match e {
                Event::Send(t) => Some(t.payload.clone()),
                _ => None,
            })
            .expect("something is sent");
        Message::from_bytes(&payload).expect("our messages decode")
    }

    fn replay(capture: &[u8], ia_na: u32, xids: Vec<u32>) -> (Client, Lease, Message) {
        let messages = replies(capture);
        assert_eq!(messages.len(), 2, "Advertise and Reply");
        let config = ClientConfig { duid: FIBER7_DUID.to_vec(), ia_na: Some(ia_na), ia_pd: Some(1) };
        let t0 = Instant::now();
        let mut client = Client::new(config, Box::new(Sequence::new(xids)), None, t0);
        let solicit = sent(&client.handle_timeout(t0));
        assert_eq!(solicit.msg_type(), MessageType::Solicit);
        assert_eq!(solicit.opts().get(OptionCode::ClientId), Some(&DhcpOption::ClientId(FIBER7_DUID.to_vec())));
        assert!(solicit.opts().get(OptionCode::IANA).is_some() && solicit.opts().get(OptionCode::IAPD).is_some());
        let request = sent(&client.handle_packet(t0, &messages[0]).expect("the Advertise is taken"));
        assert_eq!(request.msg_type(), MessageType::Request);
        let events = client.handle_packet(t0 + Duration::from_millis(30), &messages[1]).expect("the Reply is taken");
        let Some(Event::Bound(lease)) = events.first().cloned() else { panic!("not bound: {events:?}") };
        (client, lease, request)
    }

    #[test]
    fn replays_fiber7_2018_with_server_unicast_and_status_messages() {
        let capture = include_bytes!("../../../testdata/fiber7/dhcp6-fiber7-2018.pcap");
        let (client, lease, request) = replay(capture, 1, vec![0x48e59e, 0, 0x738c3b]);
        assert_eq!(
            request.opts().get(OptionCode::ServerId),
            Some(&DhcpOption::ServerId(vec![0, 1, 0, 1, 0x22, 0x43, 0x9e, 0x23, 0x52, 0x54, 0x00, 0xfa, 0xac, 0x14]))
        );
        let Some(DhcpOption::IAPD(ia_pd)) = request.opts().get(OptionCode::IAPD) else { panic!("no IA_PD") };
        assert!(matches!(ia_pd.opts.get(OptionCode::IAPrefix), Some(DhcpOption::IAPrefix(p)) if p.prefix_len == 48));

        let address = lease.address.as_ref().expect("an address");
        assert_eq!(address.address, "2a02:168:2000:5:add7:17aa:9163:8ef3".parse::<Ipv6Addr>().expect("literal"));
        assert_eq!((address.preferred, address.valid), (Duration::from_secs(3600), Duration::from_secs(86400)));
        assert_eq!(lease.prefixes.len(), 1);
        assert_eq!(lease.prefixes[0].cidr(), "2a02:168:4a00::/48");
        assert_eq!(
            lease.dns,
            vec![
                "2001:1620:2777:1::10".parse::<Ipv6Addr>().expect("literal"),
                "2001:1620:2777:2::20".parse().expect("literal")
            ]
        );
        assert_eq!(
            (lease.t1, lease.t2, lease.valid),
            (Duration::from_secs(1200), Duration::from_secs(1800), Duration::from_secs(86400))
        );
        assert_eq!(client.state(), State::Bound);
    }

    #[test]
    fn replays_fiber7_2019_then_renews_with_the_same_server_and_rebinds_with_any() {
        let capture = include_bytes!("../../../testdata/fiber7/dhcp6-fiber7-2019-12-02.pcap");
        let (mut client, lease, _) = replay(capture, 0xb94c0c92, vec![0x49b48c, 0, 0x49b48c]);
        assert_eq!(lease.address.as_ref().map(|a| a.address), Some("2a02:168:2000:5::1f".parse().expect("literal")));
        assert_eq!(lease.prefixes[0].cidr(), "2a02:168:4bf3::/48");
        assert_eq!(
            (lease.t1, lease.t2, lease.valid),
            (Duration::from_secs(1000), Duration::from_secs(2000), Duration::from_secs(4000))
        );

        let (_, times) = client.lease().expect("bound");
        let renew = sent(&client.handle_timeout(times.renew_at));
        assert_eq!(client.state(), State::Renewing);
        assert_eq!(renew.msg_type(), MessageType::Renew);
        assert!(renew.opts().get(OptionCode::ServerId).is_some(), "Renew goes to the server that granted the lease");
        let Some(DhcpOption::IANA(ia_na)) = renew.opts().get(OptionCode::IANA) else { panic!("no IA_NA") };
        assert_eq!(ia_na.id, 0xb94c0c92);

        let mut now = times.renew_at;
        let mut last = renew;
        while client.state() == State::Renewing {
            now = client.next_wakeup();
            last = sent(&client.handle_timeout(now));
        }
        assert!(now >= times.rebind_at);
        assert_eq!(last.msg_type(), MessageType::Rebind);
        assert!(last.opts().get(OptionCode::ServerId).is_none(), "Rebind asks any server");

        let mut events = Vec::new();
        while client.state() == State::Rebinding {
            events = client.handle_timeout(client.next_wakeup());
        }
        assert!(events.contains(&Event::Expired), "{events:?}");
        let solicit = sent(&events);
        assert_eq!(solicit.msg_type(), MessageType::Solicit);
        let Some(DhcpOption::IAPD(ia_pd)) = solicit.opts().get(OptionCode::IAPD) else { panic!("no IA_PD") };
        assert!(
            matches!(ia_pd.opts.get(OptionCode::IAPrefix), Some(DhcpOption::IAPrefix(p)) if p.prefix_ip == lease.prefixes[0].prefix),
            "the old prefix is asked for again"
        );
        assert!(client.lease().is_some(), "kept past expiry");
    }

    /// A server message with our DUID, for the current transaction of `client`.
    fn server_message(kind: MessageType, xid: u32, options: Vec<DhcpOption>) -> Vec<u8> {
        let mut message = Message::new_with_id(kind, xid.to_be_bytes()[1..].try_into().expect("3 bytes"));
        message.opts_mut().insert(DhcpOption::ClientId(FIBER7_DUID.to_vec()));
        message.opts_mut().insert(DhcpOption::ServerId(vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 9]));
        for option in options {
            message.opts_mut().insert(option);
        }
        message.to_vec().expect("encodes")
    }

    fn soliciting_client(xid: u32) -> Client {
        let config = ClientConfig { duid: FIBER7_DUID.to_vec(), ia_na: None, ia_pd: Some(1) };
        let mut client = Client::new(config, Box::new(Sequence::new(vec![xid])), None, Instant::now());
        client.handle_timeout(Instant::now());
        client
    }

    fn ia_pd_with(prefix: &str, length: u8, status: Option<StatusCode>) -> DhcpOption {
        let mut opts = DhcpOptions::new();
        opts.insert(DhcpOption::IAPrefix(IAPrefix {
            preferred_lifetime: 300,
            valid_lifetime: 600,
            prefix_len: length,
            prefix_ip: prefix.parse().expect("literal"),
            opts: DhcpOptions::new(),
        }));
        if let Some(status) = status {
            opts.insert(DhcpOption::StatusCode(status));
        }
        DhcpOption::IAPD(IAPD { id: 1, t1: 100, t2: 200, opts })
    }

    #[test]
    fn no_prefix_available_is_reported_once_and_the_client_keeps_asking() {
        let mut client = soliciting_client(7);
        let status = StatusCode { status: dhcproto::v6::Status::NoPrefixAvail, msg: "none left".into() };
        let advertise = server_message(MessageType::Advertise, 7, vec![ia_pd_with("2001:db8:100::", 56, Some(status))]);
        let events = client.handle_packet(Instant::now(), &advertise).expect("handled");
        assert!(
            matches!(&events[..], [Event::Refused(text)] if text.contains("NoPrefixAvail (none left)")),
            "{events:?}"
        );
        assert_eq!(client.state(), State::Soliciting);
        assert_eq!(client.handle_packet(Instant::now(), &advertise), Ok(Vec::new()), "reported once");
        let solicit = sent(&client.handle_timeout(client.next_wakeup()));
        assert_eq!(solicit.msg_type(), MessageType::Solicit);
    }

    #[test]
    fn prefixes_longer_than_64_or_not_global_are_never_applied() {
        for (prefix, length) in [("2001:db8:100::", 80), ("fe80::", 48), ("ff02::", 16), ("::", 0)] {
            let mut client = soliciting_client(7);
            let advertise = server_message(MessageType::Advertise, 7, vec![ia_pd_with(prefix, length, None)]);
            let events = client.handle_packet(Instant::now(), &advertise).expect("handled");
            assert!(matches!(&events[..], [Event::Refused(_)]), "{prefix}/{length}: {events:?}");
            assert_eq!(client.state(), State::Soliciting);
        }
    }

    #[test]
    fn reconfigure_and_other_transactions_are_ignored() {
        let mut client = soliciting_client(7);
        let reconfigure = server_message(MessageType::Reconfigure, 7, vec![]);
        assert!(matches!(client.handle_packet(Instant::now(), &reconfigure), Err(Ignored::Unexpected(10, _))));
        let other = server_message(MessageType::Advertise, 8, vec![ia_pd_with("2001:db8:100::", 56, None)]);
        assert_eq!(client.handle_packet(Instant::now(), &other), Err(Ignored::OtherTransaction));
        assert_eq!(client.state(), State::Soliciting);
    }

    #[test]
    fn malformed_messages_are_ignored_never_a_panic() {
        let capture = include_bytes!("../../../testdata/fiber7/dhcp6-fiber7-2018.pcap");
        let messages = replies(capture);
        let reply = &messages[1];
        let fresh = || {
            let (client, _, _) = replay(capture, 1, vec![0x48e59e, 0, 0x738c3b]);
            client
        };
        let mut client = fresh();
        client.restart(Instant::now());
        // Truncations inside the options are errors.
        let mut requesting = {
            let config = ClientConfig { duid: FIBER7_DUID.to_vec(), ia_na: Some(1), ia_pd: Some(1) };
            let mut c = Client::new(config, Box::new(Sequence::new(vec![0x48e59e, 0, 0x738c3b])), None, Instant::now());
            c.handle_timeout(Instant::now());
            c.handle_packet(Instant::now(), &messages[0]).expect("advertise");
            c
        };
        // DHCPv6 has no end marker: a cut between two options leaves a shorter valid message; a cut inside one
        // must be refused.
        let mut boundaries = vec![4];
        while let Some(&at) = boundaries.last().filter(|&&at| at + 4 <= reply.len()) {
            boundaries.push(at + 4 + usize::from(u16::from_be_bytes([reply[at + 2], reply[at + 3]])));
        }
        for len in (0..reply.len()).filter(|len| !boundaries.contains(len)) {
            assert!(requesting.handle_packet(Instant::now(), &reply[..len]).is_err(), "accepted {len} bytes");
        }
        assert_eq!(requesting.state(), State::Requesting);

        let mut seed = 0x9e37_79b9_u32;
        for _ in 0..20_000 {
            let mut bytes = reply.clone();
            for _ in 0..1 + (seed % 4) {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let at = 4 + seed as usize % (bytes.len() - 4);
                bytes[at] = (seed >> 8) as u8;
            }
            let mut probe = {
                let config = ClientConfig { duid: FIBER7_DUID.to_vec(), ia_na: Some(1), ia_pd: Some(1) };
                let mut c =
                    Client::new(config, Box::new(Sequence::new(vec![0x48e59e, 0, 0x738c3b])), None, Instant::now());
                c.handle_timeout(Instant::now());
                let _ = c.handle_packet(Instant::now(), &messages[0]);
                c
            };
            if let Ok(events) = probe.handle_packet(Instant::now(), &bytes) {
                for event in events {
                    if let Event::Bound(lease) = event {
                        for prefix in &lease.prefixes {
                            assert!((1..=64).contains(&prefix.length), "{lease:?}");
                            assert!(super::super::lease::is_global_unicast(prefix.prefix), "{lease:?}");
                        }
                        assert!(lease.t1 <= lease.t2 && lease.t2 <= lease.valid, "{lease:?}");
                    }
                }
            }
        }
    }
}
