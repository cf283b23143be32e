//! Real client programs, as devices run them: DHCP clients (busybox udhcpc, ISC dhclient) that record every event
//! and configure their interface, and one-shot tools (rdisc6, dig, curl).

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    command::{self, Output},
    error::{IoContext, LabError},
    isp::write_executable,
    netns::Netns,
    programs,
    tracker::Tracker,
    wait,
};

/// Which DHCP client a device runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DhcpClientKind {
    /// busybox udhcpc, sending `hostname` (option 12).
    Udhcpc { hostname: Option<String> },
    /// ISC dhclient -4, sending `hostname`.
    Dhclient4 { hostname: Option<String> },
    /// ISC dhclient -6 asking for an address, and with `prefix_delegation` also for a prefix (IA_PD).
    Dhclient6 { prefix_delegation: bool },
}

impl DhcpClientKind {
    fn label(&self) -> &'static str {
        match self {
            DhcpClientKind::Udhcpc { .. } => "udhcpc",
            DhcpClientKind::Dhclient4 { .. } => "dhclient4",
            DhcpClientKind::Dhclient6 { .. } => "dhclient6",
        }
    }

    /// The event names that mean "configured".
    pub fn bound_events(&self) -> &'static [&'static str] {
        match self {
            DhcpClientKind::Udhcpc { .. } => &["bound", "renew"],
            DhcpClientKind::Dhclient4 { .. } => &["BOUND", "RENEW", "REBIND", "REBOOT"],
            DhcpClientKind::Dhclient6 { .. } => &["BOUND6", "RENEW6", "REBIND6", "REBOOT6"],
        }
    }
}

/// One event reported by a DHCP client's script, with the variables it was given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientEvent {
    pub name: String,
    pub vars: BTreeMap<String, String>,
}

impl ClientEvent {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }
}

/// A DHCP client running in a namespace. It keeps running (and renewing) until the lab stops it.
#[derive(Debug)]
pub struct DhcpClient {
    pub kind: DhcpClientKind,
    pub pid: u32,
    interface: String,
    events: PathBuf,
    tracker: Tracker,
}

impl DhcpClient {
    /// Starts the client on `interface` in `netns`; its files go to `dir`.
    pub fn start(
        tracker: &Tracker,
        netns: &Netns,
        interface: &str,
        kind: DhcpClientKind,
        dir: &Path,
    ) -> Result<DhcpClient, LabError> {
        let label = kind.label();
        fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
        let events = dir.join(format!("{label}-{interface}.events"));
        // A new client starts with no events: an earlier client's "bound" on this interface is not this one's.
        match fs::remove_file(&events) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(LabError::unexpected(format!("removing {}", events.display()), error.to_string()));
            }
            _ => {}
        }
        let script = dir.join(format!("{label}-{interface}.sh"));
        let template = match kind {
            DhcpClientKind::Udhcpc { .. } => include_str!("assets/udhcpc.sh"),
            _ => include_str!("assets/dhclient.sh"),
        };
        write_executable(&script, &template.replace("@EVENTS@", &events.to_string_lossy()))?;
        let path = |suffix: &str| dir.join(format!("{label}-{interface}.{suffix}")).display().to_string();
        let (program, args) = match &kind {
            DhcpClientKind::Udhcpc { hostname } => {
                // Foreground, keeps renewing; retries every second so tests do not wait for backoff.
                let mut args = ["udhcpc", "-f", "-i", interface, "-s", &script.to_string_lossy(), "-t", "3", "-T", "1"]
                    .map(String::from)
                    .to_vec();
                args.extend(["-A".to_string(), "1".to_string()]);
                if let Some(name) = hostname {
                    args.extend(["-x".to_string(), format!("hostname:{name}")]);
                }
                (programs::BUSYBOX, args)
            }
            DhcpClientKind::Dhclient4 { hostname } => {
                let config = dir.join(format!("{label}-{interface}.conf"));
                let send = hostname.as_ref().map(|n| format!("send host-name \"{n}\";\n")).unwrap_or_default();
                let text = format!(
                    "{send}request subnet-mask, broadcast-address, routers, domain-name, domain-name-servers, \
                     domain-search, host-name, interface-mtu;\ninitial-interval 1;\nbackoff-cutoff 2;\n"
                );
                fs::write(&config, text).context(|| format!("writing {}", config.display()))?;
                let mut args = ["-4", "-d", "-v", "-cf"].map(String::from).to_vec();
                args.push(config.display().to_string());
                args.extend(dhclient_files(&script, &path("leases"), &path("pid"), interface));
                (programs::DHCLIENT, args)
            }
            DhcpClientKind::Dhclient6 { prefix_delegation } => {
                let mut args = ["-6", "-d", "-v"].map(String::from).to_vec();
                if *prefix_delegation {
                    // -P alone would ask only for a prefix; -N keeps the address request.
                    args.extend(["-P".to_string(), "-N".to_string()]);
                }
                args.extend(dhclient_files(&script, &path("leases"), &path("pid"), interface));
                (programs::DHCLIENT, args)
            }
        };
        let binary =
            program.locate().ok_or_else(|| LabError::MissingPrograms(vec![(program.name, program.package)]))?;
        let name = format!("{} {label} on {interface}", netns.name());
        let pid = tracker.spawn(&name, netns, &binary, &args, &[], &dir.join(format!("{label}-{interface}.log")))?;
        Ok(DhcpClient { kind, pid, interface: interface.to_string(), events, tracker: tracker.clone() })
    }

    /// Every event so far, oldest first.
    pub fn events(&self) -> Vec<ClientEvent> {
        parse_events(&fs::read_to_string(&self.events).unwrap_or_default())
    }

    /// Waits for the first event that satisfies `wanted` (described by `what` in a timeout message).
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        mut wanted: impl FnMut(&ClientEvent) -> bool,
    ) -> Result<ClientEvent, LabError> {
        let what = format!("{} on {} to report {what}", self.kind.label(), self.interface);
        wait::until(&what, timeout, || {
            if let Some(event) = self.events().into_iter().find(|e| wanted(e)) {
                return Ok(Some(event));
            }
            if let Some(status) = self.tracker.exit_status(self.pid) {
                let events = self.events().iter().map(|e| e.name.clone()).collect::<Vec<_>>().join(", ");
                return Err(LabError::unexpected(&what, format!("the client exited ({status}); events: [{events}]")));
            }
            Ok(None)
        })
    }

    /// Waits until the client is configured (an address, or for dhclient -6 an address or a prefix) and returns
    /// that event.
    pub fn wait_bound(&self, timeout: Duration) -> Result<ClientEvent, LabError> {
        let names = self.kind.bound_events();
        self.wait_for(&names.join(" or "), timeout, |e| names.contains(&e.name.as_str()))
    }

    pub fn stop(&self) {
        self.tracker.stop(self.pid);
    }
}

/// dhclient's own script, lease and PID files (never the system's), and the interface.
fn dhclient_files(script: &Path, leases: &str, pid: &str, interface: &str) -> Vec<String> {
    let script = script.display().to_string();
    ["-sf", &script, "-lf", leases, "-pf", pid, interface].map(String::from).to_vec()
}

/// Parses the event file the scripts write: `key=value` lines, each event ended by `---`. The first key is `event`.
pub fn parse_events(text: &str) -> Vec<ClientEvent> {
    let mut events = Vec::new();
    let mut current = ClientEvent::default();
    for line in text.lines() {
        if line == "---" {
            events.push(std::mem::take(&mut current));
        } else if let Some((key, value)) = line.split_once('=') {
            if key == "event" {
                current.name = value.to_string();
            } else {
                current.vars.insert(key.to_string(), value.to_string());
            }
        }
    }
    events
}

/// A router advertisement as `rdisc6` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouterAdvert {
    pub managed: bool,
    pub other_config: bool,
    pub router_lifetime: Option<u32>,
    pub prefixes: Vec<AdvertPrefix>,
    pub rdnss: Vec<String>,
    pub dnssl: Vec<String>,
    pub mtu: Option<u32>,
    /// The router's link-local address.
    pub from: Option<String>,
    pub raw: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdvertPrefix {
    pub prefix: String,
    pub on_link: bool,
    pub autonomous: bool,
    pub valid: Option<u32>,
    pub preferred: Option<u32>,
}

/// Sends router solicitations on `interface` and returns the first advertisement (`rdisc6 -1`).
pub fn rdisc6(netns: &Netns, interface: &str) -> Result<RouterAdvert, LabError> {
    let out = netns.run(program(programs::RDISC6)?, &["-1", "-r", "3", "-w", "1500", interface])?;
    Ok(parse_rdisc6(&out))
}

pub fn parse_rdisc6(text: &str) -> RouterAdvert {
    let mut advert = RouterAdvert { raw: text.to_string(), ..RouterAdvert::default() };
    let number = |value: &str| value.split_whitespace().next().and_then(|n| n.parse::<u32>().ok());
    for line in text.lines() {
        if let Some(from) = line.trim().strip_prefix("from ") {
            advert.from = Some(from.trim().to_string());
            continue;
        }
        let Some((key, value)) = line.split_once(':') else { continue };
        let (key, value) = (key.trim(), value.trim());
        let yes = value == "Yes";
        match key {
            "Stateful address conf." => advert.managed = yes,
            "Stateful other conf." => advert.other_config = yes,
            "Router lifetime" => advert.router_lifetime = number(value),
            "Prefix" => advert.prefixes.push(AdvertPrefix { prefix: value.to_string(), ..AdvertPrefix::default() }),
            "On-link" => advert.prefixes.last_mut().into_iter().for_each(|p| p.on_link = yes),
            "Autonomous address conf." => advert.prefixes.last_mut().into_iter().for_each(|p| p.autonomous = yes),
            "Valid time" => advert.prefixes.last_mut().into_iter().for_each(|p| p.valid = number(value)),
            "Pref. time" => advert.prefixes.last_mut().into_iter().for_each(|p| p.preferred = number(value)),
            "Recursive DNS server" => advert.rdnss.push(value.to_string()),
            "DNS search list" => advert.dnssl.push(value.to_string()),
            "MTU" => advert.mtu = number(value),
            _ => {}
        }
    }
    advert
}

/// `dig +short @SERVER NAME TYPE`: the answer's records, one per entry (empty for NXDOMAIN or no data).
pub fn dig(netns: &Netns, server: &str, name: &str, record_type: &str) -> Result<Vec<String>, LabError> {
    let server = format!("@{server}");
    let out = netns.run(program(programs::DIG)?, &["+short", "+time=2", "+tries=2", &server, name, record_type])?;
    Ok(out.lines().map(str::to_string).filter(|l| !l.is_empty()).collect())
}

/// `dig` with its full output, for status codes (NXDOMAIN, REFUSED) and flags.
pub fn dig_full(netns: &Netns, server: &str, name: &str, record_type: &str) -> Result<Output, LabError> {
    let server = format!("@{server}");
    command::run_unchecked(netns.command(program(programs::DIG)?).args([
        "+time=2",
        "+tries=2",
        &server,
        name,
        record_type,
    ]))
}

/// An HTTP GET with curl; the body on success, the failure with curl's message otherwise.
pub fn curl(netns: &Netns, url: &str) -> Result<String, LabError> {
    netns.run(program(programs::CURL)?, &["--silent", "--show-error", "--max-time", "5", url])
}

fn program(program: programs::Program) -> Result<PathBuf, LabError> {
    program.locate().ok_or_else(|| LabError::MissingPrograms(vec![(program.name, program.package)]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_at_the_separator() {
        let events =
            parse_events("event=deconfig\ninterface=eth0\n---\nevent=bound\nip=192.0.2.50\nmask=24\n---\nevent=half");
        assert_eq!(events.len(), 2, "an unterminated event is still being written");
        assert_eq!(events[1].name, "bound");
        assert_eq!(events[1].get("ip"), Some("192.0.2.50"));
    }

    #[test]
    fn rdisc6_output_is_parsed() {
        let text = "Soliciting ff02::2 (ff02::2) on uplink0...

Hop limit                 :           64 (      0x40)
Stateful address conf.    :          Yes
Stateful other conf.      :          Yes
Mobile home agent         :           No
Router preference         :       medium
Neighbor discovery proxy  :           No
Router lifetime           :         1800 (0x00000708) seconds
Reachable time            :  unspecified (0x00000000)
Retransmit time           :  unspecified (0x00000000)
 Prefix                   : 2001:db8:0:1::/64
  On-link                 :          Yes
  Autonomous address conf.:           No
  Valid time              :        86400 (0x00015180) seconds
  Pref. time              :        14400 (0x00003840) seconds
 Recursive DNS server     : 2001:db8:0:1::1
  DNS server lifetime     :           20 (0x00000014) seconds
 Source link-layer address: 02:00:00:00:99:01
 from fe80::ff:fe00:9901
";
        let advert = parse_rdisc6(text);
        assert!(advert.managed && advert.other_config);
        assert_eq!(advert.router_lifetime, Some(1800));
        assert_eq!(
            advert.prefixes,
            vec![AdvertPrefix {
                prefix: "2001:db8:0:1::/64".into(),
                on_link: true,
                autonomous: false,
                valid: Some(86400),
                preferred: Some(14400)
            }]
        );
        assert_eq!(advert.rdnss, vec!["2001:db8:0:1::1"]);
        assert_eq!(advert.from.as_deref(), Some("fe80::ff:fe00:9901"));
    }
}
