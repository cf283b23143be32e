//! Changes to the lease table from the API, sent to the DHCPv4 server service that owns it and answered on a
//! reply channel (validation, persistence and the change itself happen there, in one place).

use std::{net::Ipv4Addr, time::SystemTime};

use super::{Lease, Mac};
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
    /// Writes the whole table to `leases.json` now (the journal folded in), e.g. before a backup.
    WriteFile,
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

pub(crate) type LeaseRequest = command_channel::Request<LeaseCommand, Result<Option<Lease>, LeaseCommandError>>;

/// An address offered to a client that has not requested it yet: held for it, but not a lease (so neither in
/// the lease table nor in DNS).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offered {
    pub mac: Mac,
    pub addr: Ipv4Addr,
    pub interface: String,
    pub until: SystemTime,
}

/// A question for the outstanding offers (answered by the server when asked: they change with every DISCOVER,
/// too often to publish a copy of them each time).
pub(crate) type OfferRequest = command_channel::Request<(), Vec<Offered>>;

/// The DHCP server's ends of the channels from the API (shared by every restart of the server).
#[derive(Clone)]
pub struct LeaseInbox {
    pub commands: command_channel::Inbox<LeaseCommand, Result<Option<Lease>, LeaseCommandError>>,
    pub offers: command_channel::Inbox<(), Vec<Offered>>,
}

#[derive(Clone, Debug)]
pub struct LeaseControl {
    commands: command_channel::Sender<LeaseCommand, Result<Option<Lease>, LeaseCommandError>>,
    offers: command_channel::Sender<(), Vec<Offered>>,
}

impl LeaseControl {
    pub fn new() -> (LeaseControl, LeaseInbox) {
        let (commands, command_inbox) = command_channel::channel(16);
        let (offers, offer_inbox) = command_channel::channel(4);
        (LeaseControl { commands, offers }, LeaseInbox { commands: command_inbox, offers: offer_inbox })
    }

    /// Sends a command; the changed lease (`None` after a removal) or why nothing changed.
    pub async fn send(&self, command: LeaseCommand) -> Result<Option<Lease>, LeaseCommandError> {
        self.commands.send(command).await.unwrap_or(Err(LeaseCommandError::Unavailable))
    }

    /// The offers outstanding now, on every LAN.
    pub async fn offers(&self) -> Result<Vec<Offered>, LeaseCommandError> {
        self.offers.send(()).await.ok_or(LeaseCommandError::Unavailable)
    }
}
