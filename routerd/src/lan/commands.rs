//! Changes to the lease table from the API, sent to the DHCPv4 server service that owns it and answered on a
//! reply channel (validation, persistence and the change itself happen there, in one place).

use std::net::Ipv4Addr;

use super::dhcp4d::{Lease, Mac};
use crate::command_channel;

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
    #[error("{0}")]
    Failed(String),
}

pub type LeaseRequest = command_channel::Request<LeaseCommand, Result<Option<Lease>, LeaseCommandError>>;
pub type LeaseInbox = command_channel::Inbox<LeaseCommand, Result<Option<Lease>, LeaseCommandError>>;

#[derive(Clone, Debug)]
pub struct LeaseControl(command_channel::Sender<LeaseCommand, Result<Option<Lease>, LeaseCommandError>>);

impl LeaseControl {
    pub fn new() -> (LeaseControl, LeaseInbox) {
        let (sender, inbox) = command_channel::channel(16);
        (LeaseControl(sender), inbox)
    }

    /// Sends a command; the changed lease (`None` after a removal) or why nothing changed.
    pub async fn send(&self, command: LeaseCommand) -> Result<Option<Lease>, LeaseCommandError> {
        self.0.send(command).await.unwrap_or(Err(LeaseCommandError::Unavailable))
    }
}
