//! Commands from the API to the uplink's DHCP clients (release, renew), each answered on a reply channel by
//! the service that owns the client, so the decision and its effects stay in one place.

use crate::command_channel;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Release,
    Renew,
}

/// What a client did with a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The lease (described in one line) was given back.
    Released(String),
    NothingToRelease,
    /// The client started over and is asking the ISP.
    Renewing,
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Released(lease) => write!(f, "released {lease}"),
            Answer::NothingToRelease => f.write_str("no lease to release"),
            Answer::Renewing => f.write_str("asking the ISP for a lease now"),
        }
    }
}

/// One client's answer; `answer` is `None` when the client is not running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub client: &'static str,
    pub answer: Option<Answer>,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.answer {
            Some(answer) => write!(f, "{}: {answer}", self.client),
            None => write!(f, "{}: not running", self.client),
        }
    }
}

pub(crate) type Request = command_channel::Request<Command, Answer>;

/// The receiving end, shared by every restart of a service.
pub(crate) type Inbox = command_channel::Inbox<Command, Answer>;

/// The API's handle to one client service.
#[derive(Clone, Debug)]
pub struct Control {
    name: &'static str,
    sender: command_channel::Sender<Command, Answer>,
}

impl Control {
    pub fn new(name: &'static str) -> (Control, Inbox) {
        let (sender, inbox) = command_channel::channel(4);
        (Control { name, sender }, inbox)
    }

    /// Sends a command and waits for the service's answer.
    pub async fn send(&self, command: Command) -> Outcome {
        Outcome { client: self.name, answer: self.sender.send(command).await }
    }
}

/// The uplink's clients that exist on this router.
#[derive(Clone, Debug, Default)]
pub struct UplinkControl {
    pub dhcp4: Option<Control>,
    pub dhcp6: Option<Control>,
}
