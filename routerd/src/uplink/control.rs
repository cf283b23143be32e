//! Commands from the API to the uplink's DHCP clients (release, renew), each answered on a reply channel by
//! the service that owns the client, so the decision and its effects stay in one place.

use crate::command_channel;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Release,
    Renew,
}

pub type Request = command_channel::Request<Command, String>;

/// The receiving end, shared by every restart of a service.
pub type Inbox = command_channel::Inbox<Command, String>;

/// The API's handle to one client service.
#[derive(Clone, Debug)]
pub struct Control {
    name: &'static str,
    sender: command_channel::Sender<Command, String>,
}

impl Control {
    pub fn new(name: &'static str) -> (Control, Inbox) {
        let (sender, inbox) = command_channel::channel(4);
        (Control { name, sender }, inbox)
    }

    /// Sends a command and waits for the service's answer.
    pub async fn send(&self, command: Command) -> String {
        match self.sender.send(command).await {
            Some(text) => format!("{}: {text}", self.name),
            None => format!("{}: not running", self.name),
        }
    }
}

/// The uplink's clients that exist on this router.
#[derive(Clone, Debug, Default)]
pub struct UplinkControl {
    pub dhcp4: Option<Control>,
    pub dhcp6: Option<Control>,
}
