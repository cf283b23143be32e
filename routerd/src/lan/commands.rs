//! Changes to the lease table from the API, sent to the DHCPv4 server service that owns it and answered on a
//! reply channel (validation, persistence and the change itself happen there, in one place).

use std::{net::Ipv4Addr, sync::Arc};

use tokio::sync::{Mutex, mpsc, oneshot};

use super::dhcp4d::{Lease, Mac};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseCommand {
    /// Sets (or with `None` clears) the owner's name for a client.
    SetHostname {
        mac: Mac,
        hostname: Option<String>,
    },
    AddStatic {
        mac: Mac,
        addr: Ipv4Addr,
        hostname: Option<String>,
    },
    RemoveStatic {
        mac: Mac,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeaseCommandError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the DHCP server is not running")]
    Unavailable,
}

pub struct LeaseRequest {
    pub command: LeaseCommand,
    pub reply: oneshot::Sender<Result<Option<Lease>, LeaseCommandError>>,
}

pub type LeaseInbox = Arc<Mutex<mpsc::Receiver<LeaseRequest>>>;

#[derive(Clone, Debug)]
pub struct LeaseControl {
    sender: mpsc::Sender<LeaseRequest>,
}

impl LeaseControl {
    pub fn new() -> (LeaseControl, LeaseInbox) {
        let (sender, receiver) = mpsc::channel(16);
        (LeaseControl { sender }, Arc::new(Mutex::new(receiver)))
    }

    /// Sends a command; the changed lease (`None` after a removal) or why nothing changed.
    pub async fn send(&self, command: LeaseCommand) -> Result<Option<Lease>, LeaseCommandError> {
        let (reply, answer) = oneshot::channel();
        self.sender.send(LeaseRequest { command, reply }).await.map_err(|_| LeaseCommandError::Unavailable)?;
        answer.await.map_err(|_| LeaseCommandError::Unavailable)?
    }
}
