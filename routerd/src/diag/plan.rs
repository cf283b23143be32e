//! What to check, from what the router knows right now ([`Facts`], gathered by [`super::facts`]): the tree of
//! [`Planned`] checks. Pure, so every branch is tested without a network.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::{Duration, SystemTime},
};

use super::tree::Planned;
use crate::uplink::state::UplinkSnapshot;

/// A check: either already decided from the facts, or a probe to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    Known(Result<String, String>),
    /// An ICMP echo; a link-local target needs the interface.
    Ping {
        target: IpAddr,
        interface: Option<String>,
    },
    /// A TCP connection to any of the targets.
    Tcp {
        targets: Vec<SocketAddr>,
    },
    /// `name` resolves through the servers (any answer that is not an error).
    Dns {
        servers: Vec<SocketAddr>,
        name: String,
    },
    /// The router's own DNS server on a LAN address answers for the router's name.
    LanDns {
        server: SocketAddr,
        name: String,
    },
}

/// Where reachability is checked (routerd.json `diagnostics`); empty means the upstream DNS servers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Targets {
    pub tcp: Vec<SocketAddr>,
    /// Resolved through the upstream servers; `.` (the root zone) unless configured.
    pub dns_name: String,
    /// routerd.json `dns_upstreams`: used instead of the ISP's servers when set.
    pub dns_upstreams: Vec<IpAddr>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LinkFacts {
    pub name: String,
    /// `/sys/class/net/*/operstate`: "up", "down", "lowerlayerdown", "unknown", …
    pub oper_state: String,
    pub carrier: Option<bool>,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
}

impl LinkFacts {
    fn check(&self) -> Result<String, String> {
        let counters = format!(
            "rx {} packets, tx {} packets, {} errors",
            self.rx_packets,
            self.tx_packets,
            self.rx_errors + self.tx_errors
        );
        let up = self.oper_state == "up" || (self.oper_state == "unknown" && self.carrier == Some(true));
        if up {
            Ok(format!("{} is up; {counters}", self.name))
        } else {
            let carrier = if self.carrier == Some(false) { ", no carrier (cable or ISP side down?)" } else { "" };
            Err(format!("{} is {}{carrier}; {counters}", self.name, self.oper_state))
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct UplinkFacts {
    pub link: LinkFacts,
    pub snapshot: UplinkSnapshot,
    /// Addresses on the uplink now.
    pub addresses: Vec<IpAddr>,
    /// The IPv6 default route's gateway on the uplink (from the ISP's router advertisements).
    pub ipv6_gateway: Option<Ipv6Addr>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LanFacts {
    pub link: LinkFacts,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6_global: Vec<Ipv6Addr>,
    /// The DHCPv4 server's state (`None`: not configured) and whether UDP port 67 is bound.
    pub dhcp_service: Option<String>,
    pub dhcp_port_bound: bool,
    /// The router advertisement service's state (`None`: not running here).
    pub ra_service: Option<String>,
    /// The DHCPv4 pool: (addresses free, addresses in all).
    pub pool: Option<(u32, u32)>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Facts {
    pub now: Option<SystemTime>,
    pub uplink: Option<UplinkFacts>,
    pub lans: Vec<LanFacts>,
    pub targets: Targets,
    /// The name the router answers to in DNS.
    pub router_name: String,
    /// The firewall service's state and message (`None`: no firewall on this machine, e.g. no uplink).
    pub firewall: Option<(String, String)>,
    /// The clock check's verdict (`None`: no NTP server known, nothing to check).
    pub clock: Option<Result<String, String>>,
}

const DNS_PORT: u16 = 53;

fn node(id: &str, parent: Option<&str>, title: &str, check: Check) -> Planned<Check> {
    Planned { id: id.to_string(), parent: parent.map(String::from), title: title.to_string(), check }
}

fn ago(now: SystemTime, then: SystemTime) -> String {
    match then.duration_since(now) {
        Ok(ahead) => format!("in {}", human(ahead)),
        Err(behind) => format!("{} ago", human(behind.duration())),
    }
}

fn human(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        0..120 => format!("{seconds} s"),
        120..7200 => format!("{} min", seconds / 60),
        _ => format!("{} h", seconds / 3600),
    }
}

/// The whole tree for these facts, parents before children.
pub(crate) fn plan(facts: &Facts) -> Vec<Planned<Check>> {
    let mut plan = Vec::new();
    if let Some(uplink) = &facts.uplink {
        plan_uplink(facts, uplink, &mut plan);
    }
    if let Some((state, message)) = &facts.firewall {
        let loaded = if state == "running" {
            Ok(format!("loaded; {message}"))
        } else {
            Err(format!("the firewall is {state}: {message}; nothing new is forwarded"))
        };
        plan.push(node("firewall", None, "firewall and NAT", Check::Known(loaded)));
    }
    if let Some(verdict) = &facts.clock {
        plan.push(node("clock", None, "clock (NTP)", Check::Known(verdict.clone())));
    }
    for lan in &facts.lans {
        plan_lan(facts, lan, &mut plan);
    }
    plan
}

fn plan_uplink(facts: &Facts, uplink: &UplinkFacts, plan: &mut Vec<Planned<Check>>) {
    let name = &uplink.link.name;
    plan.push(node("uplink/link", None, &format!("{name} link"), Check::Known(uplink.link.check())));
    plan_ipv4(facts, uplink, plan);
    plan_ipv6_prefix(facts, uplink, plan);
    plan_ipv6_route(facts, uplink, plan);
}

/// IPv4: lease → gateway → the internet.
fn plan_ipv4(facts: &Facts, uplink: &UplinkFacts, plan: &mut Vec<Planned<Check>>) {
    let now = facts.now.unwrap_or_else(SystemTime::now);
    let name = &uplink.link.name;
    let dhcp4 = uplink.snapshot.dhcp4.as_ref();
    let lease4 = match dhcp4 {
        None => Err("no DHCPv4 lease (the ISP's server has not answered yet)".to_string()),
        Some(status) if !uplink.addresses.contains(&IpAddr::V4(status.lease.address)) => {
            Err(format!("lease for {} but the address is not on {name}", status.lease.address))
        }
        Some(status) => {
            let expiry = status
                .expires_at
                .map(|at| {
                    if at > now {
                        format!(", expires {}", ago(now, at))
                    } else {
                        format!(", expired {} (kept)", ago(now, at))
                    }
                })
                .unwrap_or_default();
            Ok(format!("{}/{} ({}{expiry})", status.lease.address, status.lease.prefix_len, status.phase))
        }
    };
    plan.push(node("uplink/dhcp4", Some("uplink/link"), "DHCPv4 lease", Check::Known(lease4)));
    let gateway = match dhcp4.and_then(|s| s.lease.gateway) {
        Some(gateway) => Check::Ping { target: IpAddr::V4(gateway), interface: None },
        None => Check::Known(Err("the lease names no gateway (option 3)".into())),
    };
    plan.push(node("uplink/dhcp4/gateway", Some("uplink/dhcp4"), "IPv4 gateway answers ping", gateway));
    let v4_dns: Vec<IpAddr> = if facts.targets.dns_upstreams.is_empty() {
        dhcp4.map(|s| s.lease.dns.iter().map(|a| IpAddr::V4(*a)).collect()).unwrap_or_default()
    } else {
        facts.targets.dns_upstreams.iter().copied().filter(IpAddr::is_ipv4).collect()
    };
    plan.push(node(
        "internet/tcp",
        Some("uplink/dhcp4/gateway"),
        "internet reachable over TCP (IPv4)",
        tcp_check(&facts.targets.tcp, &v4_dns, true),
    ));
    let dns_check = if v4_dns.is_empty() {
        Check::Known(Err("no IPv4 upstream DNS server (none in the lease or routerd.json)".into()))
    } else {
        Check::Dns {
            servers: v4_dns.iter().map(|a| SocketAddr::new(*a, DNS_PORT)).collect(),
            name: facts.targets.dns_name.clone(),
        }
    };
    plan.push(node("internet/dns", Some("uplink/dhcp4/gateway"), "upstream DNS resolves", dns_check));
}

/// IPv6: lease → a /64 of the delegated prefix on each LAN → router advertisements there.
fn plan_ipv6_prefix(facts: &Facts, uplink: &UplinkFacts, plan: &mut Vec<Planned<Check>>) {
    let dhcp6 = uplink.snapshot.dhcp6.as_ref();
    let lease6 = match (dhcp6, &uplink.snapshot.ipv6_unavailable) {
        (_, Some(reason)) => Err(format!("no IPv6 for the LANs: {reason}")),
        (None, None) => Err("no DHCPv6 lease (the ISP's server has not answered yet)".to_string()),
        (Some(status), None) if status.lease.prefixes.is_empty() => Err("the lease delegates no prefix".into()),
        (Some(status), None) => {
            let prefixes: Vec<String> = status.lease.prefixes.iter().map(|p| p.cidr()).collect();
            Ok(format!("prefix {} ({})", prefixes.join(", "), status.phase))
        }
    };
    plan.push(node("uplink/dhcp6", Some("uplink/link"), "DHCPv6 lease with a delegated prefix", Check::Known(lease6)));
    let delegated = dhcp6.map(|s| s.lease.prefixes.clone()).unwrap_or_default();
    for lan in &facts.lans {
        let lan_name = &lan.link.name;
        let inside = lan.ipv6_global.iter().find(|address| {
            delegated.iter().any(|p| crate::uplink::dhcp6::lease::mask(**address, p.length) == p.prefix)
        });
        let prefix_id = format!("lan/{lan_name}/ipv6");
        let known = match inside {
            Some(address) => Ok(format!("{address}/64 on {lan_name}")),
            None => Err(format!("{lan_name} has no address from the delegated prefix")),
        };
        plan.push(node(
            &prefix_id,
            Some("uplink/dhcp6"),
            &format!("{lan_name}: a /64 of the prefix"),
            Check::Known(known),
        ));
        let ra = match &lan.ra_service {
            Some(state) if state == "running" => Ok(format!("advertising on {lan_name}")),
            Some(state) => Err(format!("the router advertisement service is {state}")),
            None => Err("the router advertisement service is not running".into()),
        };
        plan.push(node(
            &format!("lan/{lan_name}/ra"),
            Some(&prefix_id),
            &format!("{lan_name}: router advertisements"),
            Check::Known(ra),
        ));
    }
}

/// IPv6 routing: an RA on the uplink gave a default route → its gateway → the internet.
fn plan_ipv6_route(facts: &Facts, uplink: &UplinkFacts, plan: &mut Vec<Planned<Check>>) {
    let name = &uplink.link.name;
    let dhcp6 = uplink.snapshot.dhcp6.as_ref();
    let route = match uplink.ipv6_gateway {
        Some(gateway) => Ok(format!("default route via {gateway} on {name}")),
        None => Err(format!("no IPv6 default route on {name} (no router advertisement seen)")),
    };
    plan.push(node("uplink/ra", Some("uplink/link"), "router advertisement on the uplink", Check::Known(route)));
    let gateway6 = match uplink.ipv6_gateway {
        Some(gateway) => Check::Ping { target: IpAddr::V6(gateway), interface: Some(name.clone()) },
        None => Check::Known(Err("no IPv6 gateway".into())),
    };
    plan.push(node("uplink/ra/gateway", Some("uplink/ra"), "IPv6 gateway answers ping", gateway6));
    let v6_dns: Vec<IpAddr> = if facts.targets.dns_upstreams.is_empty() {
        dhcp6.map(|s| s.lease.dns.iter().map(|a| IpAddr::V6(*a)).collect()).unwrap_or_default()
    } else {
        facts.targets.dns_upstreams.iter().copied().filter(IpAddr::is_ipv6).collect()
    };
    plan.push(node(
        "internet6/tcp",
        Some("uplink/ra/gateway"),
        "internet reachable over TCP (IPv6)",
        tcp_check(&facts.targets.tcp, &v6_dns, false),
    ));
}

/// TCP targets of one family: the configured ones, else the upstream DNS servers' port 53.
fn tcp_check(configured: &[SocketAddr], dns: &[IpAddr], ipv4: bool) -> Check {
    let targets: Vec<SocketAddr> = if configured.is_empty() {
        dns.iter().map(|a| SocketAddr::new(*a, DNS_PORT)).collect()
    } else {
        configured.iter().copied().filter(|t| t.is_ipv4() == ipv4).collect()
    };
    if targets.is_empty() {
        let family = if ipv4 { "IPv4" } else { "IPv6" };
        Check::Known(Err(format!("no {family} target (no upstream DNS server; set diagnostics.tcp_targets)")))
    } else {
        Check::Tcp { targets }
    }
}

fn plan_lan(facts: &Facts, lan: &LanFacts, plan: &mut Vec<Planned<Check>>) {
    let name = &lan.link.name;
    let link_id = format!("lan/{name}/link");
    plan.push(node(&link_id, None, &format!("{name} link"), Check::Known(lan.link.check())));
    let Some(address) = lan.ipv4 else { return };
    let dhcp = match (&lan.dhcp_service, lan.dhcp_port_bound) {
        (Some(state), true) if state == "running" => Ok(format!("serving on {address}:67")),
        (Some(state), _) if state != "running" => Err(format!("the DHCPv4 server is {state}")),
        (Some(_), _) => Err("nothing listens on UDP port 67".into()),
        (None, _) => Err("no DHCPv4 server configured for this LAN".into()),
    };
    plan.push(node(
        &format!("lan/{name}/dhcp4"),
        Some(&link_id),
        &format!("{name}: DHCPv4 server"),
        Check::Known(dhcp),
    ));
    if let Some((free, usable)) = lan.pool {
        let pool = if free > 0 {
            Ok(format!("{free} of {usable} addresses free"))
        } else {
            Err(format!(
                "all {usable} addresses are leased: a new device gets none (many new clients at once?); \
                 see rtrctl leases list"
            ))
        };
        plan.push(node(
            &format!("lan/{name}/pool"),
            Some(&format!("lan/{name}/dhcp4")),
            &format!("{name}: free addresses"),
            Check::Known(pool),
        ));
    }
    plan.push(node(
        &format!("lan/{name}/dns"),
        Some(&link_id),
        &format!("{name}: DNS server"),
        Check::LanDns { server: SocketAddr::new(IpAddr::V4(address), DNS_PORT), name: facts.router_name.clone() },
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uplink::{
        dhcp4, dhcp6,
        state::{Dhcp4Status, Dhcp6Status},
    };

    fn link(name: &str, state: &str) -> LinkFacts {
        LinkFacts { name: name.into(), oper_state: state.into(), carrier: Some(state == "up"), ..Default::default() }
    }

    fn healthy() -> Facts {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let lease4 = dhcp4::Lease {
            address: Ipv4Addr::new(198, 51, 100, 150),
            prefix_len: 24,
            gateway: Some(Ipv4Addr::new(198, 51, 100, 1)),
            dns: vec![Ipv4Addr::new(198, 51, 100, 1)],
            ntp: Vec::new(),
            domain: None,
            server_id: None,
            lease_time: Duration::from_secs(120),
            t1: Duration::from_secs(60),
            t2: Duration::from_secs(100),
        };
        let prefix: Ipv6Addr = "2001:db8:100::".parse().expect("literal");
        let lease6 = dhcp6::Lease {
            address: None,
            prefixes: vec![dhcp6::DelegatedPrefix {
                prefix,
                length: 56,
                preferred: Duration::from_secs(30),
                valid: Duration::from_secs(40),
            }],
            dns: vec!["2001:db8:0:1::1".parse().expect("literal")],
            ntp: Vec::new(),
            server_id: vec![1],
            t1: Duration::from_secs(10),
            t2: Duration::from_secs(20),
            valid: Duration::from_secs(40),
        };
        Facts {
            now: Some(now),
            uplink: Some(UplinkFacts {
                link: link("uplink0", "up"),
                snapshot: UplinkSnapshot {
                    dhcp4: Some(Dhcp4Status {
                        phase: crate::uplink::protocol::Phase::Bound,
                        lease: lease4,
                        bound_at: Some(now),
                        renew_at: None,
                        rebind_at: None,
                        expires_at: Some(now + Duration::from_secs(120)),
                    }),
                    dhcp6: Some(Dhcp6Status {
                        phase: crate::uplink::protocol::Phase::Bound,
                        lease: lease6,
                        bound_at: Some(now),
                        renew_at: None,
                        rebind_at: None,
                        expires_at: None,
                    }),
                    ipv6_unavailable: None,
                },
                addresses: vec![IpAddr::V4(Ipv4Addr::new(198, 51, 100, 150))],
                ipv6_gateway: Some("fe80::1".parse().expect("literal")),
            }),
            lans: vec![LanFacts {
                link: link("lan0", "up"),
                ipv4: Some(Ipv4Addr::new(192, 0, 2, 1)),
                ipv6_global: vec!["2001:db8:100::1".parse().expect("literal")],
                dhcp_service: Some("running".into()),
                dhcp_port_bound: true,
                ra_service: Some("running".into()),
                pool: None,
            }],
            targets: Targets { dns_name: "example.com".into(), ..Default::default() },
            router_name: "router".into(),
            firewall: None,
            clock: None,
        }
    }

    fn ids(plan: &[Planned<Check>]) -> Vec<&str> {
        plan.iter().map(|p| p.id.as_str()).collect()
    }

    fn check<'a>(plan: &'a [Planned<Check>], id: &str) -> &'a Check {
        &plan.iter().find(|p| p.id == id).unwrap_or_else(|| panic!("{id} planned")).check
    }

    #[test]
    fn a_healthy_router_plans_every_check_with_its_targets() {
        let plan = plan(&healthy());
        assert_eq!(
            ids(&plan),
            vec![
                "uplink/link",
                "uplink/dhcp4",
                "uplink/dhcp4/gateway",
                "internet/tcp",
                "internet/dns",
                "uplink/dhcp6",
                "lan/lan0/ipv6",
                "lan/lan0/ra",
                "uplink/ra",
                "uplink/ra/gateway",
                "internet6/tcp",
                "lan/lan0/link",
                "lan/lan0/dhcp4",
                "lan/lan0/dns",
            ]
        );
        // Parents come first.
        for (index, planned) in plan.iter().enumerate() {
            if let Some(parent) = &planned.parent {
                assert!(plan[..index].iter().any(|p| &p.id == parent), "{} before {parent}", planned.id);
            }
        }
        for (id, known) in plan.iter().filter_map(|p| match &p.check {
            Check::Known(known) => Some((&p.id, known)),
            _ => None,
        }) {
            assert!(known.is_ok(), "{id}: {known:?}");
        }
        assert_eq!(
            check(&plan, "uplink/dhcp4"),
            &Check::Known(Ok("198.51.100.150/24 (bound, expires in 2 min)".into()))
        );
        assert_eq!(
            check(&plan, "uplink/ra/gateway"),
            &Check::Ping { target: "fe80::1".parse().expect("literal"), interface: Some("uplink0".into()) }
        );
        // Defaults: the upstream DNS servers, never a hard-coded host.
        assert_eq!(
            check(&plan, "internet/tcp"),
            &Check::Tcp { targets: vec!["198.51.100.1:53".parse().expect("literal")] }
        );
        assert_eq!(
            check(&plan, "internet6/tcp"),
            &Check::Tcp { targets: vec!["[2001:db8:0:1::1]:53".parse().expect("literal")] }
        );
        assert_eq!(
            check(&plan, "internet/dns"),
            &Check::Dns { servers: vec!["198.51.100.1:53".parse().expect("literal")], name: "example.com".into() }
        );
    }

    #[test]
    fn configured_targets_replace_the_defaults_per_family() {
        let mut facts = healthy();
        facts.targets.tcp = vec!["203.0.113.80:80".parse().expect("literal")];
        facts.targets.dns_upstreams = vec!["203.0.113.53".parse().expect("literal")];
        let plan = plan(&facts);
        assert_eq!(
            check(&plan, "internet/tcp"),
            &Check::Tcp { targets: vec!["203.0.113.80:80".parse().expect("literal")] }
        );
        assert!(matches!(check(&plan, "internet6/tcp"), Check::Known(Err(why)) if why.contains("no IPv6 target")));
        assert!(
            matches!(check(&plan, "internet/dns"), Check::Dns { servers, .. } if servers[0].port() == 53 && servers[0].ip().to_string() == "203.0.113.53")
        );
    }

    #[test]
    fn a_link_without_carrier_fails_with_the_reason() {
        let mut facts = healthy();
        if let Some(uplink) = facts.uplink.as_mut() {
            uplink.link = link("uplink0", "lowerlayerdown");
        }
        let plan = plan(&facts);
        let Check::Known(Err(why)) = check(&plan, "uplink/link") else { panic!("the link check fails") };
        assert!(why.contains("uplink0 is lowerlayerdown, no carrier"), "{why}");
    }

    #[test]
    fn missing_leases_and_an_isp_without_ipv6_fail_their_nodes() {
        let mut facts = healthy();
        if let Some(uplink) = facts.uplink.as_mut() {
            uplink.snapshot.dhcp4 = None;
            uplink.snapshot.ipv6_unavailable = Some("the ISP delegated no prefix".into());
            uplink.ipv6_gateway = None;
        }
        let plan = plan(&facts);
        assert!(matches!(check(&plan, "uplink/dhcp4"), Check::Known(Err(why)) if why.contains("no DHCPv4 lease")));
        assert!(matches!(check(&plan, "uplink/dhcp6"), Check::Known(Err(why)) if why.contains("delegated no prefix")));
        assert!(matches!(check(&plan, "uplink/ra"), Check::Known(Err(why)) if why.contains("no IPv6 default route")));
    }

    #[test]
    fn lan_services_that_are_not_serving_fail() {
        let mut facts = healthy();
        facts.lans[0].dhcp_port_bound = false;
        facts.lans[0].ra_service = Some("restarting".into());
        facts.lans[0].ipv6_global = vec!["2001:db8:999::1".parse().expect("literal")];
        let plan = plan(&facts);
        assert!(matches!(check(&plan, "lan/lan0/dhcp4"), Check::Known(Err(why)) if why.contains("port 67")));
        assert!(
            matches!(check(&plan, "lan/lan0/ipv6"), Check::Known(Err(why)) if why.contains("no address from the delegated prefix"))
        );
        assert!(matches!(check(&plan, "lan/lan0/ra"), Check::Known(Err(why)) if why.contains("restarting")));
    }

    #[test]
    fn a_firewall_that_is_not_loaded_fails_its_check() {
        let mut facts = healthy();
        facts.firewall = Some(("running".into(), "2 port forwards".into()));
        assert_eq!(check(&plan(&facts), "firewall"), &Check::Known(Ok("loaded; 2 port forwards".into())));
        facts.firewall = Some(("restarting".into(), "nftables refused the ruleset".into()));
        let planned = plan(&facts);
        let Check::Known(Err(reason)) = check(&planned, "firewall") else { panic!("the check fails") };
        assert!(reason.contains("restarting: nftables refused the ruleset"), "{reason}");
        facts.firewall = None;
        assert!(!ids(&plan(&facts)).contains(&"firewall"));
    }

    #[test]
    fn a_full_pool_fails_its_check() {
        let mut facts = healthy();
        facts.lans[0].pool = Some((12, 100));
        assert_eq!(check(&plan(&facts), "lan/lan0/pool"), &Check::Known(Ok("12 of 100 addresses free".into())));
        facts.lans[0].pool = Some((0, 100));
        let planned = plan(&facts);
        let Check::Known(Err(reason)) = check(&planned, "lan/lan0/pool") else { panic!("the check fails") };
        assert!(reason.contains("all 100 addresses are leased"), "{reason}");
    }

    #[test]
    fn without_an_uplink_only_the_lans_are_checked() {
        let mut facts = healthy();
        facts.uplink = None;
        assert_eq!(ids(&plan(&facts)), vec!["lan/lan0/link", "lan/lan0/dhcp4", "lan/lan0/dns"]);
    }
}
