//! DNS over UDP, on a thread of its own with a single-threaded runtime, as unbound's one thread: a query, its
//! upstream socket and its answer never move between CPUs, which on a busy router costs more than the work
//! itself, and a flood of queries cannot take the threads DHCP and the API run on.

use std::{borrow::Cow, sync::Arc, thread, time::Instant};

use hickory_proto::op::Message;
use tokio::{net::UdpSocket, sync::oneshot, task::JoinSet};

use super::service::{Shared, forwardable_key};

/// The thread serving every LAN's UDP sockets. Dropping it ends the thread; [`UdpThread::stop`] also waits for
/// its sockets to be closed.
pub(super) struct UdpThread {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
    failed: oneshot::Receiver<String>,
}

impl UdpThread {
    pub(super) fn start(sockets: Vec<std::net::UdpSocket>, shared: Arc<Shared>) -> std::io::Result<UdpThread> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let (report_failure, failed) = oneshot::channel();
        let thread = thread::Builder::new().name("dns-udp".into()).spawn(move || {
            runtime.block_on(async move {
                let mut listeners = JoinSet::new();
                for socket in sockets {
                    match UdpSocket::from_std(socket) {
                        Ok(socket) => listeners.spawn(serve(Arc::new(socket), shared.clone())),
                        Err(error) => {
                            let _ = report_failure.send(format!("a DNS socket: {error}"));
                            return;
                        }
                    };
                }
                tokio::select! {
                    _ = stopped => {}
                    done = listeners.join_next() => {
                        let _ = report_failure.send(format!("a DNS listener stopped: {done:?}"));
                    }
                }
            });
            // Dropping the runtime here ends the queries still waiting for an upstream and closes every socket.
        })?;
        Ok(UdpThread { stop: Some(stop), thread: Some(thread), failed })
    }

    /// Resolves if the thread ends on its own (a listener failed), with why.
    pub(super) async fn failed(&mut self) -> String {
        (&mut self.failed).await.unwrap_or_else(|_| "the DNS thread ended".to_string())
    }

    /// Ends the thread and waits until it has closed its sockets, so that a restarted service does not share
    /// port 53 (SO_REUSEPORT) with sockets nobody reads.
    pub(super) async fn stop(mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

async fn serve(socket: Arc<UdpSocket>, shared: Arc<Shared>) {
    // Reused for every query: a cache hit allocates nothing.
    let (mut buffer, mut key, mut answer) = (vec![0u8; 4096], Vec::new(), Vec::new());
    loop {
        let Ok((len, client)) = socket.recv_from(&mut buffer).await else { continue };
        if !shared.budget.allow(client.ip(), Instant::now()) {
            shared.options.metrics.dns.dropped.inc();
            continue;
        }
        let request = &buffer[..len];
        // Cache hits are answered right here; anything that may wait for an upstream gets its own task, so a
        // slow upstream never holds up other queries.
        if let Some(question_end) = forwardable_key(request, &mut key)
            && shared.cached(&key, request, question_end, &mut answer)
        {
            let _ = socket.send_to(&fitted(request, &answer), client).await;
            continue;
        }
        let Some(slot) = shared.waiting.try_acquire(client.ip()) else {
            shared.options.metrics.dns.dropped.inc();
            continue;
        };
        let request = request.to_vec();
        let (socket, shared) = (socket.clone(), shared.clone());
        tokio::spawn(async move {
            let _slot = slot;
            if let Some(response) = shared.handle_uncached(&request).await {
                let _ = socket.send_to(&fitted(&request, &response), client).await;
            }
        });
    }
}

/// `response`, truncated if it is larger than `request` allows: without EDNS a client takes 512 bytes over UDP
/// (RFC 1035), with it what it says, capped at 1232 here.
fn fitted<'a>(request: &[u8], response: &'a [u8]) -> Cow<'a, [u8]> {
    let limit = if request.len() >= 12 && request[11] > 0 { 1232 } else { 512 };
    if response.len() > limit
        && let Some(truncated) = truncated(response)
    {
        return Cow::Owned(truncated);
    }
    Cow::Borrowed(response)
}

/// The header and question only, with TC set: the client asks again over TCP.
fn truncated(response: &[u8]) -> Option<Vec<u8>> {
    let message = Message::from_vec(response).ok()?;
    message.truncate().to_vec().ok()
}
