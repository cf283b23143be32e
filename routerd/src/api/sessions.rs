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

use crate::limits::{ConnectionLimit, Slot};

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

pub struct Sessions {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Open>>,
    handshakes: Arc<ConnectionLimit>,
}

impl Default for Sessions {
    fn default() -> Sessions {
        Sessions {
            next: AtomicU64::new(0),
            open: Mutex::default(),
            handshakes: ConnectionLimit::new(MAX_HANDSHAKES, MAX_HANDSHAKES_PER_SOURCE),
        }
    }
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
    pub fn start_handshake(&self, source: IpAddr) -> Option<Slot> {
        self.handshakes.try_acquire(source)
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
}
