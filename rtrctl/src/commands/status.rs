//! `rtrctl status`.

use routerd_proto::v1 as pb;
use serde::Serialize;

use crate::{
    cli::Cli,
    error::CliError,
    output::{self, Format, Table, human_duration, rfc3339},
};

/// The JSON document of `rtrctl -o json status`. Field names are stable: scripts rely on them.
#[derive(Debug, Serialize)]
pub struct StatusDoc {
    pub version: String,
    pub hostname: String,
    pub uptime_seconds: u64,
    pub started_at: String,
    pub interfaces: Vec<InterfaceDoc>,
    pub uplink: UplinkDoc,
    pub services: Vec<ServiceDoc>,
    pub config_problems: Vec<ConfigProblemDoc>,
    pub clock: ClockDoc,
}

#[derive(Debug, Serialize)]
pub struct ClockDoc {
    /// "synchronized", "unsynchronized", "no_servers"
    pub state: &'static str,
    pub now: Option<String>,
    pub sets_system_clock: bool,
    pub servers: Vec<String>,
    pub server: String,
    pub offset_seconds: f64,
    pub synchronized_at: Option<String>,
    pub last_error: String,
}

impl From<pb::ClockStatus> for ClockDoc {
    fn from(clock: pb::ClockStatus) -> Self {
        ClockDoc {
            state: match pb::ClockState::try_from(clock.state) {
                Ok(pb::ClockState::Synchronized) => "synchronized",
                Ok(pb::ClockState::Unsynchronized) => "unsynchronized",
                Ok(pb::ClockState::NoServers) => "no_servers",
                _ => "unknown",
            },
            now: opt_time(&clock.now),
            synchronized_at: opt_time(&clock.synchronized_at),
            sets_system_clock: clock.sets_system_clock,
            servers: clock.servers,
            server: clock.server,
            offset_seconds: clock.offset_seconds,
            last_error: clock.last_error,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct InterfaceDoc {
    pub name: String,
    pub role: &'static str,
    pub hardware_addr: String,
    pub oper_state: String,
    pub mtu: u32,
    pub addrs: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct UplinkDoc {
    pub dhcp4: Option<Dhcp4Doc>,
    pub dhcp6: Option<Dhcp6Doc>,
    pub ipv6_unavailable: bool,
    pub ipv6_unavailable_reason: String,
}

#[derive(Debug, Serialize)]
pub struct Dhcp4Doc {
    pub state: String,
    pub addr: String,
    pub gateway: String,
    pub dns_servers: Vec<String>,
    pub server_id: String,
    pub renew_at: Option<String>,
    pub rebind_at: Option<String>,
    pub expires_at: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Dhcp6Doc {
    pub state: String,
    pub addr: String,
    pub prefixes: Vec<String>,
    pub dns_servers: Vec<String>,
    pub server_id: String,
    pub renew_at: Option<String>,
    pub rebind_at: Option<String>,
    pub valid_until: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ServiceDoc {
    pub name: String,
    pub state: &'static str,
    pub message: String,
    pub restarts: u32,
    pub since: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ConfigProblemDoc {
    pub file: String,
    pub message: String,
}

pub async fn run(cli: &Cli) -> Result<(), CliError> {
    let channel = super::connect(cli).await?;
    let status = super::get_status(channel).await?;
    let doc = StatusDoc::from(status);
    match cli.output {
        Format::Json => output::print_json(&doc),
        Format::Table => {
            println!("{}", render(&doc));
            Ok(())
        }
    }
}

fn opt_time(t: &Option<prost_types::Timestamp>) -> Option<String> {
    t.as_ref().map(rfc3339)
}

impl From<pb::GetStatusResponse> for StatusDoc {
    fn from(status: pb::GetStatusResponse) -> Self {
        let uplink = status.uplink.unwrap_or_default();
        StatusDoc {
            version: status.version,
            hostname: status.hostname,
            uptime_seconds: status.uptime.map(|d| d.seconds.max(0) as u64).unwrap_or(0),
            started_at: status.started_at.as_ref().map(rfc3339).unwrap_or_default(),
            interfaces: status
                .interfaces
                .into_iter()
                .map(|i| InterfaceDoc {
                    role: match pb::InterfaceRole::try_from(i.role) {
                        Ok(pb::InterfaceRole::Uplink) => "uplink",
                        Ok(pb::InterfaceRole::Lan) => "lan",
                        _ => "other",
                    },
                    name: i.name,
                    hardware_addr: i.hardware_addr,
                    oper_state: i.oper_state,
                    mtu: i.mtu,
                    addrs: i.addrs,
                })
                .collect(),
            uplink: UplinkDoc {
                dhcp4: uplink.dhcp4.map(|l| Dhcp4Doc {
                    renew_at: opt_time(&l.renew_at),
                    rebind_at: opt_time(&l.rebind_at),
                    expires_at: opt_time(&l.expires_at),
                    state: l.state,
                    addr: l.addr,
                    gateway: l.gateway,
                    dns_servers: l.dns_servers,
                    server_id: l.server_id,
                }),
                dhcp6: uplink.dhcp6.map(|l| Dhcp6Doc {
                    renew_at: opt_time(&l.renew_at),
                    rebind_at: opt_time(&l.rebind_at),
                    valid_until: opt_time(&l.valid_until),
                    state: l.state,
                    addr: l.addr,
                    prefixes: l.prefixes,
                    dns_servers: l.dns_servers,
                    server_id: l.server_id,
                }),
                ipv6_unavailable: uplink.ipv6_unavailable,
                ipv6_unavailable_reason: uplink.ipv6_unavailable_reason,
            },
            services: status
                .services
                .into_iter()
                .map(|s| ServiceDoc {
                    state: match pb::ServiceState::try_from(s.state) {
                        Ok(pb::ServiceState::Starting) => "starting",
                        Ok(pb::ServiceState::Running) => "running",
                        Ok(pb::ServiceState::Restarting) => "restarting",
                        Ok(pb::ServiceState::Stopped) => "stopped",
                        Ok(pb::ServiceState::Disabled) => "disabled",
                        _ => "unknown",
                    },
                    since: opt_time(&s.since),
                    name: s.name,
                    message: s.message,
                    restarts: s.restarts,
                })
                .collect(),
            config_problems: status
                .config_problems
                .into_iter()
                .map(|p| ConfigProblemDoc { file: p.file, message: p.message })
                .collect(),
            clock: ClockDoc::from(status.clock.unwrap_or_default()),
        }
    }
}

/// The human-readable form.
pub fn render(doc: &StatusDoc) -> String {
    let mut out = format!("{} — routerd {}, up {}\n", doc.hostname, doc.version, human_duration(doc.uptime_seconds));
    out.push_str("\nUplink\n");
    match &doc.uplink.dhcp4 {
        Some(l) => out.push_str(&format!(
            "  DHCPv4  {} {} via {}, DNS {}, server {}, renew {}, expires {}\n",
            l.state,
            l.addr,
            l.gateway,
            l.dns_servers.join(" "),
            l.server_id,
            l.renew_at.as_deref().unwrap_or("-"),
            l.expires_at.as_deref().unwrap_or("-")
        )),
        None => out.push_str("  DHCPv4  no lease\n"),
    }
    match &doc.uplink.dhcp6 {
        Some(l) => out.push_str(&format!(
            "  DHCPv6  {} prefixes {}, address {}, DNS {}, renew {}, valid until {}\n",
            l.state,
            l.prefixes.join(" "),
            if l.addr.is_empty() { "-" } else { &l.addr },
            l.dns_servers.join(" "),
            l.renew_at.as_deref().unwrap_or("-"),
            l.valid_until.as_deref().unwrap_or("-")
        )),
        None if doc.uplink.ipv6_unavailable => {
            out.push_str(&format!("  DHCPv6  IPv6 unavailable: {}\n", doc.uplink.ipv6_unavailable_reason))
        }
        None => out.push_str("  DHCPv6  no lease\n"),
    }
    if doc.uplink.ipv6_unavailable && doc.uplink.dhcp6.is_some() {
        out.push_str(&format!("  IPv6    unavailable on the LANs: {}\n", doc.uplink.ipv6_unavailable_reason));
    }
    let clock = &doc.clock;
    let now = clock.now.as_deref().unwrap_or("-");
    out.push_str(&match clock.state {
        "synchronized" => format!(
            "\nClock   {now}, {} {} (off by {:+.3} s at {})\n",
            if clock.sets_system_clock { "set from" } else { "agrees with" },
            clock.server,
            clock.offset_seconds,
            clock.synchronized_at.as_deref().unwrap_or("-")
        ),
        "unsynchronized" if !clock.last_error.is_empty() => {
            format!("\nClock   {now}, not synchronized: {}\n", clock.last_error)
        }
        "unsynchronized" => format!("\nClock   {now}, asking {}\n", clock.servers.join(" ")),
        _ => format!("\nClock   {now}, no NTP server known (set ntp_servers in routerd.json)\n"),
    });
    let mut interfaces = Table::new(&["INTERFACE", "ROLE", "STATE", "MAC", "MTU", "ADDRESSES"]);
    for i in &doc.interfaces {
        interfaces.row(vec![
            i.name.clone(),
            i.role.to_string(),
            i.oper_state.clone(),
            i.hardware_addr.clone(),
            i.mtu.to_string(),
            i.addrs.join(" "),
        ]);
    }
    out.push('\n');
    out.push_str(&interfaces.render());
    let mut services = Table::new(&["SERVICE", "STATE", "RESTARTS", "MESSAGE"]);
    for s in &doc.services {
        services.row(vec![s.name.clone(), s.state.to_string(), s.restarts.to_string(), s.message.clone()]);
    }
    out.push_str("\n\n");
    out.push_str(&services.render());
    if !doc.config_problems.is_empty() {
        out.push_str("\n\nConfiguration problems (defaults are used for these files until they are fixed)\n");
        for p in &doc.config_problems {
            out.push_str(&format!("  {}: {}\n", p.file, p.message));
        }
    }
    out.trim_end().to_string()
}
