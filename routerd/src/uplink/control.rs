//! Commands from the API to the uplink's DHCP clients (release, renew), each answered on a reply channel by
//! the service that owns the client, so the decision and its effects stay in one place.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Release,
    Renew,
}

pub struct Request {
    pub command: Command,
    pub reply: oneshot::Sender<String>,
}

/// The receiving end, shared by every restart of a service (the supervisor starts it anew after a failure).
pub type Inbox = Arc<Mutex<mpsc::Receiver<Request>>>;

/// The API's handle to one client service.
#[derive(Clone, Debug)]
pub struct Control {
    name: &'static str,
    sender: mpsc::Sender<Request>,
}

impl Control {
    pub fn new(name: &'static str) -> (Control, Inbox) {
        let (sender, receiver) = mpsc::channel(4);
        (Control { name, sender }, Arc::new(Mutex::new(receiver)))
    }

    /// Sends a command and waits for the service's answer.
    pub async fn send(&self, command: Command) -> String {
        let (reply, answer) = oneshot::channel();
        if self.sender.send(Request { command, reply }).await.is_err() {
            return format!("{}: not running", self.name);
        }
        match answer.await {
            Ok(text) => format!("{}: {text}", self.name),
            Err(_) => format!("{}: stopped before answering", self.name),
        }
    }
}

/// The uplink's clients that exist on this router.
#[derive(Clone, Debug, Default)]
pub struct UplinkControl {
    pub dhcp4: Option<Control>,
    pub dhcp6: Option<Control>,
}
