//! The API's open connections, so that the router can end them: a revoked identity's connections (and the
//! streams on them: a capture, a lease watch, an update) within a second of the revoke, every connection when
//! the CA is replaced. Also the bound on TLS handshakes in progress, in all and per source address.

use std::{
    collections::{BTreeSet, HashMap},
    net::{IpAddr, SocketAddr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::Context,
};

use futures_util::task::AtomicWaker;

/// Handshakes in progress at once, in all and from one address: a LAN host cannot hold more sockets than this
/// (each for at most the handshake timeout).
pub const MAX_HANDSHAKES: usize = 64;
pub const MAX_HANDSHAKES_PER_SOURCE: usize = 8;

#[derive(Default)]
struct Flag {
    closed: AtomicBool,
    waker: AtomicWaker,
}

struct Open {
    serial: Option<String>,
    remote: SocketAddr,
    flag: Arc<Flag>,
}

#[derive(Default)]
pub struct Sessions {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Open>>,
    handshakes: Mutex<HashMap<IpAddr, usize>>,
}

impl Sessions {
    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Open>> {
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers an established connection; it is forgotten when the returned guard is dropped.
    pub fn register(self: &Arc<Self>, serial: Option<String>, remote: SocketAddr) -> Session {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let flag = Arc::new(Flag::default());
        self.open().insert(id, Open { serial, remote, flag: flag.clone() });
        Session { id, sessions: self.clone(), flag }
    }

    /// Closes the connections of these certificate serials; returns how many.
    pub fn close_revoked(&self, revoked: &BTreeSet<String>) -> usize {
        self.close_where(|open| open.serial.as_ref().is_some_and(|serial| revoked.contains(serial)))
    }

    /// Closes every connection; returns how many.
    pub fn close_all(&self) -> usize {
        self.close_where(|_| true)
    }

    fn close_where(&self, close: impl Fn(&Open) -> bool) -> usize {
        let open = self.open();
        let mut closed = 0;
        for session in open.values().filter(|s| close(s) && !s.flag.closed.load(Ordering::Acquire)) {
            tracing::info!(
                "closing the connection from {} (serial {})",
                session.remote,
                session.serial.as_deref().unwrap_or("none")
            );
            session.flag.closed.store(true, Ordering::Release);
            session.flag.waker.wake();
            closed += 1;
        }
        closed
    }

    /// Connections open now.
    pub fn count(&self) -> usize {
        self.open().len()
    }

    /// A slot for a handshake from `source`, or `None` when too many are in progress (in all or from it).
    pub fn start_handshake(self: &Arc<Self>, source: IpAddr) -> Option<HandshakeSlot> {
        let mut handshakes = self.handshakes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let total: usize = handshakes.values().sum();
        let from_source = handshakes.get(&source).copied().unwrap_or(0);
        if total >= MAX_HANDSHAKES || from_source >= MAX_HANDSHAKES_PER_SOURCE {
            return None;
        }
        handshakes.insert(source, from_source + 1);
        Some(HandshakeSlot { sessions: self.clone(), source })
    }
}

/// One handshake in progress; the slot is free again when this is dropped.
pub struct HandshakeSlot {
    sessions: Arc<Sessions>,
    source: IpAddr,
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut handshakes = self.sessions.handshakes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = handshakes.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                handshakes.remove(&self.source);
            }
        }
    }
}

/// An established connection's registration.
pub struct Session {
    id: u64,
    sessions: Arc<Sessions>,
    flag: Arc<Flag>,
}

impl Session {
    /// Whether the router closed this connection; otherwise the task polling it is woken when it does.
    pub fn poll_closed(&self, cx: &Context<'_>) -> bool {
        self.flag.waker.register(cx.waker());
        self.flag.closed.load(Ordering::Acquire)
    }

    pub fn is_closed(&self) -> bool {
        self.flag.closed.load(Ordering::Acquire)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.sessions.open().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("literal")
    }

    #[test]
    fn revoking_closes_only_that_identitys_connections_and_wakes_them() {
        let sessions = Arc::new(Sessions::default());
        let laptop = sessions.register(Some("aa01".into()), addr("192.0.2.10:40000"));
        let phone = sessions.register(Some("bb02".into()), addr("192.0.2.11:40000"));
        let pairing = sessions.register(None, addr("192.0.2.12:40000"));
        let cx = Context::from_waker(Waker::noop());
        assert!(!laptop.poll_closed(&cx));
        assert_eq!(sessions.close_revoked(&BTreeSet::from(["aa01".to_string()])), 1);
        assert!(laptop.poll_closed(&cx) && !phone.is_closed() && !pairing.is_closed());
        assert_eq!(sessions.close_revoked(&BTreeSet::from(["aa01".to_string()])), 0, "closed once");
        assert_eq!(sessions.close_all(), 2);
        drop((laptop, phone, pairing));
        assert_eq!(sessions.count(), 0);
    }

    #[test]
    fn handshakes_are_capped_per_source_and_in_all() {
        let sessions = Arc::new(Sessions::default());
        let one: IpAddr = "192.0.2.10".parse().expect("literal");
        let slots: Vec<HandshakeSlot> =
            (0..MAX_HANDSHAKES_PER_SOURCE).filter_map(|_| sessions.start_handshake(one)).collect();
        assert_eq!(slots.len(), MAX_HANDSHAKES_PER_SOURCE);
        assert!(sessions.start_handshake(one).is_none(), "one host cannot take more");
        let mut others = Vec::new();
        for host in 0..=255u8 {
            if let Some(slot) = sessions.start_handshake(IpAddr::from([198, 51, 100, host])) {
                others.push(slot);
            }
        }
        assert_eq!(slots.len() + others.len(), MAX_HANDSHAKES);
        drop(slots);
        assert!(sessions.start_handshake(one).is_some(), "slots come back when handshakes end");
    }
}
