//! The one driver of the uplink's DHCP clients: it feeds an I/O-free [`Protocol`] client with packets from a
//! [`Link`], timeouts and the API's commands, and hands every lease to the family's [`Effects`], the one place
//! where a lease is saved, applied and published (router7's "persist and notify"). Before any server is asked,
//! [`Driver::restore`] applies the saved lease: a router keeps working through a reboot while the ISP's DHCP
//! server is down.

use std::future::Future;

use super::{
    control::{Answer, Command, Inbox},
    lease_times::{LeaseTimes, wall_clock},
    protocol::{Event, Phase, Protocol},
    state::LeaseStatus,
};
use crate::supervisor::Shutdown;

/// A family's sockets on the uplink.
pub(crate) trait Link: Send {
    type Transmit;
    /// Sends one message; a failure is logged there (the client retransmits anyway).
    fn send(&self, transmit: &Self::Transmit) -> impl Future<Output = ()> + Send;
    /// The next message for the client (its DHCP payload), after the link's own checks; whatever the link
    /// drops it logs itself.
    fn receive(&mut self) -> impl Future<Output = std::io::Result<Vec<u8>>> + Send;
}

/// Where a family's lease takes effect: on disk, in the kernel, and in the published uplink snapshot.
pub(crate) trait Effects: Send {
    type Lease: Clone + Send + Sync;
    /// The family in logs: "DHCPv4", "DHCPv6".
    const FAMILY: &'static str;

    /// The lease in one line for logs and for the API's answer to a release.
    fn describe(lease: &Self::Lease) -> String;
    /// Whether two leases configure the same (addresses, routes, prefixes, DNS): only then is nothing reapplied.
    fn same_configuration(lease: &Self::Lease, other: &Self::Lease) -> bool;
    /// Saves a lease; `reply` is the raw server message it came in, which some families keep beside it.
    fn save(&mut self, lease: &Self::Lease, times: LeaseTimes, reply: Option<&[u8]>);
    /// Forgets the saved lease (after a release).
    fn forget(&mut self);
    /// Configures the kernel for `lease`, replacing what `previous` configured.
    fn apply(
        &mut self,
        lease: &Self::Lease,
        previous: Option<&Self::Lease>,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// Removes what `lease` configured.
    fn remove(&mut self, lease: &Self::Lease) -> impl Future<Output = Result<(), String>> + Send;
    /// Publishes the client's status; `None` once the lease is released.
    fn publish(&mut self, status: Option<LeaseStatus<Self::Lease>>);
    /// A server refused; `configured` says whether a lease's configuration is still in place.
    fn refused(&mut self, reason: &str, configured: bool);
}

/// What a family's [`Effects`] work on: `--perm`, the uplink's name, the kernel and the published snapshot.
pub(crate) struct Surroundings {
    pub perm: std::path::PathBuf,
    pub uplink_name: String,
    pub netconfig: crate::netconfig::Netconfig,
    pub uplink: tokio::sync::watch::Sender<super::state::UplinkSnapshot>,
}

impl Surroundings {
    pub(crate) fn new(
        perm: &std::path::Path,
        uplink_name: &str,
        netconfig: crate::netconfig::Netconfig,
        uplink: tokio::sync::watch::Sender<super::state::UplinkSnapshot>,
    ) -> Surroundings {
        Surroundings { perm: perm.to_path_buf(), uplink_name: uplink_name.to_string(), netconfig, uplink }
    }
}

/// The driver's own state: what is applied in the kernel, and what was last published.
pub(crate) struct Driver<E: Effects> {
    effects: E,
    applied: Option<E::Lease>,
    expired: bool,
}

impl<E: Effects> Driver<E> {
    pub(crate) fn new(effects: E) -> Driver<E> {
        Driver { effects, applied: None, expired: false }
    }

    /// Applies and publishes the lease saved before a restart (as the family's store loaded it), before any
    /// server is asked; returns it for the client to ask for again. A saved lease that cannot be read is logged
    /// and left alone: the client asks for a new one.
    pub(crate) async fn restore(&mut self, saved: Result<Option<E::Lease>, String>) -> Option<E::Lease> {
        let lease = match saved {
            Ok(lease) => lease?,
            Err(problem) => {
                tracing::warn!("{problem}; asking the ISP for a new {} lease", E::FAMILY);
                return None;
            }
        };
        tracing::info!("applying the saved {} lease ({}) before asking the ISP", E::FAMILY, E::describe(&lease));
        match self.effects.apply(&lease, None).await {
            Ok(()) => self.applied = Some(lease.clone()),
            Err(error) => tracing::warn!("applying the saved {} lease: {error}", E::FAMILY),
        }
        self.effects.publish(Some(status(Phase::Restored, &lease, None)));
        Some(lease)
    }

    /// Runs `client` on `link` until shutdown; fails only when the link does.
    pub(crate) async fn run<C, L>(
        &mut self,
        mut client: C,
        mut link: L,
        inbox: &Inbox,
        shutdown: &mut Shutdown,
    ) -> std::io::Result<()>
    where
        C: Protocol<Lease = E::Lease>,
        L: Link<Transmit = C::Transmit>,
    {
        let mut last_phase = client.phase();
        loop {
            let wake = client.next_wakeup();
            let woken = tokio::select! {
                _ = shutdown.wait() => return Ok(()),
                _ = tokio::time::sleep_until(wake.into()) => Woken::Timeout,
                request = crate::command_channel::next(inbox) => match request {
                    Some(request) => Woken::Command(request),
                    None => continue,
                },
                received = link.receive() => Woken::Packet(received?),
            };
            let now = crate::clock::instant();
            let (events, reply) = match woken {
                Woken::Timeout => (client.handle_timeout(now), None),
                Woken::Packet(payload) => match client.handle_packet(now, &payload) {
                    Ok(events) => (events, Some(payload)),
                    Err(ignored) => {
                        tracing::debug!("{}: ignored a message: {ignored}", E::FAMILY);
                        continue;
                    }
                },
                Woken::Command(request) => {
                    let answer = self.command(&mut client, &link, request.command).await;
                    let _ = request.reply.send(answer);
                    continue;
                }
            };
            // The client is not held across an await (it is Send, not Sync): what the events need is copied out.
            let phase = client.phase();
            let current = client.lease().map(|(lease, times)| (lease.clone(), times));
            let mut published = false;
            for event in events {
                published |= matches!(event, Event::Bound(_) | Event::Expired);
                self.event(phase, current.as_ref(), &link, event, reply.as_deref()).await;
            }
            if phase != last_phase {
                last_phase = phase;
                log_phase(E::FAMILY, phase);
                // Renewing and rebinding are visible in the status too; an expired lease stays shown as such.
                if let Some((lease, times)) = &current
                    && !self.expired
                    && !published
                {
                    self.effects.publish(Some(status(phase, lease, Some(*times))));
                }
            }
        }
    }

    async fn event<L: Link>(
        &mut self,
        phase: Phase,
        current: Option<&(E::Lease, LeaseTimes)>,
        link: &L,
        event: Event<L::Transmit, E::Lease>,
        reply: Option<&[u8]>,
    ) {
        match event {
            Event::Send(transmit) => link.send(&transmit).await,
            Event::Bound(lease) => {
                let Some((_, times)) = current else { return };
                self.bound(phase, &lease, *times, reply).await;
            }
            Event::Refused(reason) => {
                tracing::warn!("{}: {reason}; asking again, keeping the current configuration", E::FAMILY);
                self.effects.refused(&reason, self.applied.is_some());
            }
            Event::Expired => {
                tracing::warn!(
                    "the {} lease expired without an answer from the ISP; keeping its configuration and asking again",
                    E::FAMILY
                );
                self.expired = true;
                if let Some((lease, times)) = current {
                    self.effects.publish(Some(status(Phase::Expired, lease, Some(*times))));
                }
            }
        }
    }

    /// A new or renewed lease: saved, applied when it configures something new, published.
    async fn bound(&mut self, phase: Phase, lease: &E::Lease, times: LeaseTimes, reply: Option<&[u8]>) {
        let changed = !self.applied.as_ref().is_some_and(|applied| E::same_configuration(applied, lease));
        tracing::info!(
            "{} lease: {}, renew in {} s, expires in {} s{}",
            E::FAMILY,
            E::describe(lease),
            times.renew_at.saturating_duration_since(times.bound_at).as_secs(),
            times.expires_at.saturating_duration_since(times.bound_at).as_secs(),
            if changed { "" } else { " (unchanged)" }
        );
        self.effects.save(lease, times, reply);
        if changed {
            match self.effects.apply(lease, self.applied.as_ref()).await {
                Ok(()) => self.applied = Some(lease.clone()),
                Err(error) => tracing::error!("applying the {} lease: {error}", E::FAMILY),
            }
        }
        self.expired = false;
        self.effects.publish(Some(status(phase, lease, Some(times))));
    }

    async fn command<C, L>(&mut self, client: &mut C, link: &L, command: Command) -> Answer
    where
        C: Protocol<Lease = E::Lease>,
        L: Link<Transmit = C::Transmit>,
    {
        match command {
            Command::Release => {
                for event in client.release(crate::clock::instant()) {
                    if let Event::Send(transmit) = event {
                        link.send(&transmit).await;
                    }
                }
                let answer = match self.applied.take() {
                    Some(lease) => {
                        if let Err(error) = self.effects.remove(&lease).await {
                            tracing::error!("removing what the released {} lease configured: {error}", E::FAMILY);
                        }
                        Answer::Released(E::describe(&lease))
                    }
                    None => Answer::NothingToRelease,
                };
                self.effects.forget();
                self.effects.publish(None);
                tracing::info!("{}: {answer} (on request); not asking again until renewed", E::FAMILY);
                answer
            }
            Command::Renew => {
                client.restart(crate::clock::instant());
                tracing::info!("{}: starting over on request", E::FAMILY);
                Answer::Renewing
            }
        }
    }
}

enum Woken {
    Timeout,
    Packet(Vec<u8>),
    Command(super::control::Request),
}

fn status<L: Clone>(phase: Phase, lease: &L, times: Option<LeaseTimes>) -> LeaseStatus<L> {
    LeaseStatus {
        phase,
        lease: lease.clone(),
        bound_at: times.map(|t| wall_clock(t.bound_at)),
        renew_at: times.map(|t| wall_clock(t.renew_at)),
        rebind_at: times.map(|t| wall_clock(t.rebind_at)),
        expires_at: times.map(|t| wall_clock(t.expires_at)),
    }
}

fn log_phase(family: &str, phase: Phase) {
    match phase {
        Phase::Renewing => tracing::info!("{family} T1 reached: renewing with the server that granted the lease"),
        Phase::Rebinding => tracing::warn!("{family} T2 reached without an answer: rebinding with any server"),
        Phase::Selecting | Phase::Soliciting => tracing::info!("{family}: looking for a server"),
        Phase::Rebooting => tracing::info!("{family}: asking to keep the saved address (INIT-REBOOT)"),
        other => tracing::debug!("{family}: {other}"),
    }
}
