//! The firewall service: loads the ruleset at start and owns the port forwards. A change is applied to the
//! kernel first and written to portforwardings.json second: if applying fails, neither changes; if writing
//! fails, the previous ruleset is put back.

use std::path::PathBuf;

use super::{
    apply,
    ruleset::{Ruleset, RulesetInput},
};
use crate::{
    command_channel,
    config::{
        PORTFORWARDINGS_JSON, PortForwarding, PortForwardingsFile,
        forwards::{Forward, parse_all},
    },
    store::{self, Mode},
    supervisor::{ServiceContext, ServiceError, ServiceState},
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForwardCommand {
    List,
    Create(PortForwarding),
    /// Replaces the forward with this ID (its protocols and port stay, so does the ID).
    Update(String, PortForwarding),
    Delete(String),
    Reload,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Failed(String),
    #[error("the firewall service is not running")]
    Unavailable,
}

pub(crate) type Forwards = Vec<(String, PortForwarding)>;

pub(crate) type ForwardRequest = command_channel::Request<ForwardCommand, Result<Forwards, ForwardError>>;
pub(crate) type ForwardInbox = command_channel::Inbox<ForwardCommand, Result<Forwards, ForwardError>>;

#[derive(Clone, Debug)]
pub struct ForwardControl(command_channel::Sender<ForwardCommand, Result<Forwards, ForwardError>>);

impl ForwardControl {
    pub fn new() -> (ForwardControl, ForwardInbox) {
        let (sender, inbox) = command_channel::channel(8);
        (ForwardControl(sender), inbox)
    }

    pub async fn send(&self, command: ForwardCommand) -> Result<Forwards, ForwardError> {
        self.0.send(command).await.unwrap_or(Err(ForwardError::Unavailable))
    }
}

/// A forward's identifier: its protocols and port(s), e.g. `tcp:8080` or `tcp,udp:8040-8060`, stable while
/// those stay the same (two forwards cannot share them).
pub(crate) fn forward_id(forward: &Forward) -> String {
    let ports = if forward.ports.start() == forward.ports.end() {
        forward.ports.start().to_string()
    } else {
        format!("{}-{}", forward.ports.start(), forward.ports.end())
    };
    format!("{}:{ports}", forward.protocols.names().join(","))
}

pub(crate) struct Firewall {
    pub perm: PathBuf,
    /// No ruleset could be loaded when routerd started, so the API and metrics listen on loopback only until
    /// the next start (said in the service's status).
    pub loopback_only: bool,
    /// Everything but the forwards.
    pub base: RulesetInput,
    pub entries: Vec<PortForwarding>,
}

impl Firewall {
    fn ruleset(&self, entries: &[PortForwarding]) -> Ruleset {
        let (forwards, _) = parse_all(entries);
        Ruleset::build(&RulesetInput { forwards, ..self.base.clone() })
    }

    fn listed(&self) -> Forwards {
        self.entries
            .iter()
            .filter_map(|entry| Forward::parse(entry).ok().map(|forward| (forward_id(&forward), entry.clone())))
            .collect()
    }

    /// Applies `entries`, then writes them; on any failure the previous state stays (kernel and disk).
    fn change(&mut self, entries: Vec<PortForwarding>) -> Result<Forwards, ForwardError> {
        apply::apply(&self.ruleset(&entries)).map_err(|e| ForwardError::Failed(e.to_string()))?;
        let file = PortForwardingsFile { forwardings: entries.clone() };
        if let Err(error) = store::write_json(&self.perm.join(PORTFORWARDINGS_JSON), &file, Mode::Public) {
            let _ = apply::apply(&self.ruleset(&self.entries));
            return Err(ForwardError::Failed(format!("saving {PORTFORWARDINGS_JSON}: {error}; nothing changed")));
        }
        self.entries = entries;
        Ok(self.listed())
    }

    fn update(&mut self, id: &str, entry: PortForwarding) -> Result<Forwards, ForwardError> {
        let forward = Forward::parse(&entry).map_err(|e| ForwardError::Invalid(e.to_string()))?;
        if forward_id(&forward) != id {
            return Err(ForwardError::Invalid(format!(
                "protocols and port identify the forward {id}; they cannot change"
            )));
        }
        let position = self
            .entries
            .iter()
            .position(|e| Forward::parse(e).map(|f| forward_id(&f) == id).unwrap_or(false))
            .ok_or_else(|| ForwardError::NotFound(format!("no port forward {id}")))?;
        let previous = self.entries.remove(position);
        let result = self.create(entry);
        if result.is_err() {
            self.entries.insert(position, previous);
        }
        result
    }

    fn create(&mut self, entry: PortForwarding) -> Result<Forwards, ForwardError> {
        let forward = Forward::parse(&entry).map_err(|e| ForwardError::Invalid(e.to_string()))?;
        let inside_a_lan = self.base.lan_networks.iter().any(|(network, len, router)| {
            let mask = u32::MAX << (32 - u32::from(*len));
            forward.dest_addr.to_bits() & mask == network.to_bits() && forward.dest_addr != *router
        });
        if !inside_a_lan {
            return Err(ForwardError::Invalid(format!(
                "dest_addr {} is not a device on a LAN ({})",
                forward.dest_addr,
                self.base.lan_networks.iter().map(|(n, l, _)| format!("{n}/{l}")).collect::<Vec<_>>().join(", ")
            )));
        }
        for (id, existing) in self.listed() {
            let Ok(other) = Forward::parse(&existing) else { continue };
            let shared_protocol = forward.protocols.names().iter().any(|p| other.protocols.names().contains(p));
            let overlap = forward.ports.start() <= other.ports.end() && other.ports.start() <= forward.ports.end();
            if shared_protocol && overlap {
                return Err(ForwardError::Conflict(format!("the port(s) are already forwarded by {id}")));
            }
        }
        let mut entries = self.entries.clone();
        entries.push(entry);
        self.change(entries)
    }

    fn delete(&mut self, id: &str) -> Result<Forwards, ForwardError> {
        let entries: Vec<PortForwarding> = self
            .entries
            .iter()
            .filter(|entry| Forward::parse(entry).map(|f| forward_id(&f) != id).unwrap_or(true))
            .cloned()
            .collect();
        if entries.len() == self.entries.len() {
            return Err(ForwardError::NotFound(format!("no port forward {id}")));
        }
        self.change(entries)
    }

    /// Re-reads portforwardings.json (after a hand edit); a file with any bad entry changes nothing.
    fn reload(&mut self) -> Result<Forwards, ForwardError> {
        let path = self.perm.join(PORTFORWARDINGS_JSON);
        let file: PortForwardingsFile =
            store::read_json_optional(&path).map_err(|e| ForwardError::Invalid(e.to_string()))?.unwrap_or_default();
        let (_, problems) = parse_all(&file.forwardings);
        if !problems.is_empty() {
            return Err(ForwardError::Invalid(format!(
                "{PORTFORWARDINGS_JSON}: {}; nothing changed",
                problems.join("; ")
            )));
        }
        apply::apply(&self.ruleset(&file.forwardings)).map_err(|e| ForwardError::Failed(e.to_string()))?;
        self.entries = file.forwardings;
        Ok(self.listed())
    }
}

pub(crate) async fn run(
    mut firewall: Firewall,
    inbox: ForwardInbox,
    mut context: ServiceContext,
) -> Result<(), ServiceError> {
    // The ruleset is complete without the fast path; it is added where the kernel has flowtables.
    firewall.base.flowtable = apply::flowtables_supported(&firewall.base.uplink);
    let flowtables = if firewall.base.flowtable { "flowtable fast path on" } else { "no flowtables in this kernel" };
    let loaded = apply::apply(&firewall.ruleset(&firewall.entries))?;
    let count = firewall.listed().len();
    tracing::info!("firewall and NAT loaded ({count} port forwards; {flowtables})");
    if !super::forwarding::forwarding_enabled() {
        // No ruleset could be loaded at start, so forwarding was left off; now there is one.
        for problem in super::forwarding::enable_forwarding(&loaded) {
            tracing::error!("{problem}");
        }
        tracing::info!("forwarding enabled: the firewall is in place");
    }
    let loopback_only = if firewall.loopback_only {
        "; the API and metrics listen on loopback only since routerd started without a firewall (restart it)"
    } else {
        ""
    };
    let summary = |count: usize| format!("{count} port forwards; {flowtables}{loopback_only}");
    context.report(ServiceState::Running, summary(count));
    loop {
        let request = tokio::select! {
            _ = context.shutdown.wait() => return Ok(()),
            request = command_channel::next(&inbox) => request,
        };
        let Some(ForwardRequest { command, reply }) = request else { return Ok(()) };
        let result = match command {
            ForwardCommand::List => Ok(firewall.listed()),
            ForwardCommand::Create(entry) => firewall.create(entry),
            ForwardCommand::Update(id, entry) => firewall.update(&id, entry),
            ForwardCommand::Delete(id) => firewall.delete(&id),
            ForwardCommand::Reload => firewall.reload(),
        };
        match &result {
            Ok(forwards) => tracing::info!(
                "port forwards now: {}",
                forwards.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>().join(", ")
            ),
            Err(error) => tracing::warn!("port forward change refused: {error}"),
        }
        context.report(ServiceState::Running, summary(firewall.listed().len()));
        let _ = reply.send(result);
    }
}
