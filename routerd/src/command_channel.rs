//! Commands to the service that owns some state, each answered on its own reply channel: the one way the API
//! asks a service to change something (validation, persistence and the change happen in the service).

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

pub struct Request<C, R> {
    pub command: C,
    pub reply: oneshot::Sender<R>,
}

/// The receiving end, shared by every restart of the service (the supervisor starts it anew after a failure).
pub(crate) type Inbox<C, R> = Arc<Mutex<mpsc::Receiver<Request<C, R>>>>;

pub(crate) struct Sender<C, R> {
    sender: mpsc::Sender<Request<C, R>>,
}

impl<C, R> Clone for Sender<C, R> {
    fn clone(&self) -> Self {
        Sender { sender: self.sender.clone() }
    }
}

impl<C, R> std::fmt::Debug for Sender<C, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("command_channel::Sender")
    }
}

pub(crate) fn channel<C, R>(capacity: usize) -> (Sender<C, R>, Inbox<C, R>) {
    let (sender, receiver) = mpsc::channel(capacity);
    (Sender { sender }, Arc::new(Mutex::new(receiver)))
}

impl<C, R> Sender<C, R> {
    /// Sends a command and waits for the answer; `None` when the service is not running or stopped first.
    pub(crate) async fn send(&self, command: C) -> Option<R> {
        let (reply, answer) = oneshot::channel();
        self.sender.send(Request { command, reply }).await.ok()?;
        answer.await.ok()
    }
}

/// The next command for the service.
pub(crate) async fn next<C, R>(inbox: &Inbox<C, R>) -> Option<Request<C, R>> {
    inbox.lock().await.recv().await
}
