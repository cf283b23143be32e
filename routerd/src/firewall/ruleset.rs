//! The firewall and NAT ruleset as data, built from the configuration alone (pure, golden-tested), in tables
//! routerd owns (`inet routerd`, `ip routerd_nat`): foreign tables are never touched. [`Ruleset::to_nft`] is
//! the ruleset in nft syntax, which [`super::apply`] loads in one transaction (and which `nft -f` accepts by
//! hand).

use std::{fmt::Write, net::Ipv4Addr};

use crate::config::{Pinhole, forwards::Forward};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RulesetInput {
    pub uplink: String,
    pub lans: Vec<String>,
    /// The LANs' IPv4 networks (address, prefix length) and the router's address on each, for hairpin NAT.
    pub lan_networks: Vec<(Ipv4Addr, u8, Ipv4Addr)>,
    pub forwards: Vec<Forward>,
    pub pinholes: Vec<Pinhole>,
    /// The kernel has flowtables: established forwarded flows take the fast path.
    pub flowtable: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Chain {
    pub name: &'static str,
    /// `type … hook … priority …; policy …;`
    pub base: Option<String>,
    pub rules: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Table {
    pub family: &'static str,
    pub name: &'static str,
    /// A flowtable definition (`flowtable ft { … }`), if any.
    pub flowtable: Option<String>,
    pub chains: Vec<Chain>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Ruleset {
    pub tables: Vec<Table>,
}

/// ICMPv6 a router must let through (RFC 4890 §4.3/§4.4): errors, echo, and neighbour discovery on the link.
const ICMPV6_INPUT: &str = "destination-unreachable, packet-too-big, time-exceeded, parameter-problem, \
echo-request, echo-reply, nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, \
mld-listener-query, mld-listener-report, mld2-listener-report";
const ICMPV6_FORWARD: &str = "destination-unreachable, packet-too-big, time-exceeded, parameter-problem, \
echo-request, echo-reply";
const ICMP_INPUT: &str = "echo-request, echo-reply, destination-unreachable, time-exceeded, parameter-problem";

fn set(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    if quoted.len() == 1 { quoted[0].clone() } else { format!("{{ {} }}", quoted.join(", ")) }
}

fn range(ports: &std::ops::RangeInclusive<u16>) -> String {
    if ports.start() == ports.end() { ports.start().to_string() } else { format!("{}-{}", ports.start(), ports.end()) }
}

impl Ruleset {
    /// What routerd loads before it turns forwarding on or binds a listener, at every start: the router itself
    /// stays reachable as it needs to be (the LANs' services, the uplink's DHCP replies and ICMP), flows that a
    /// previous ruleset let through keep going (so a restart does not cut connections), and nothing new is
    /// forwarded or translated. The full ruleset replaces it in one transaction once the firewall service runs.
    pub(crate) fn lockdown(input: &RulesetInput) -> Ruleset {
        let mut ruleset = Ruleset::build(&RulesetInput {
            forwards: Vec::new(),
            pinholes: Vec::new(),
            flowtable: false,
            ..input.clone()
        });
        for table in &mut ruleset.tables {
            for chain in &mut table.chains {
                if chain.name == "forward" {
                    chain.rules = vec![
                        "meta nfproto ipv4 ct state invalid counter drop".into(),
                        "meta nfproto ipv6 ct state invalid counter drop".into(),
                        "ct state established,related counter accept".into(),
                        "meta nfproto ipv4 counter drop".into(),
                        "meta nfproto ipv6 counter drop".into(),
                    ];
                }
            }
        }
        ruleset
    }

    pub(crate) fn build(input: &RulesetInput) -> Ruleset {
        let uplink = format!("\"{}\"", input.uplink);
        let lans = set(&input.lans);
        // Runs after the filter and sees only what it accepted: what the router forwarded, per family (flows on
        // the flowtable's fast path bypass it after their first packets).
        let forwarded_chain = Chain {
            name: "forwarded",
            base: Some("type filter hook forward priority filter + 10; policy accept;".into()),
            rules: vec!["meta nfproto ipv4 counter".into(), "meta nfproto ipv6 counter".into()],
        };
        Ruleset {
            tables: vec![
                Table {
                    family: "inet",
                    name: "routerd",
                    flowtable: input.flowtable.then(|| {
                        let mut devices = input.lans.clone();
                        devices.push(input.uplink.clone());
                        format!("flowtable fastpath {{ hook ingress priority filter; devices = {}; }}", set(&devices))
                    }),
                    chains: vec![
                        input_chain(input, &uplink, &lans),
                        forward_chain(input, &uplink, &lans),
                        forwarded_chain,
                    ],
                },
                nat_table(input, &uplink),
            ],
        }
    }

    #[cfg(test)]
    /// The ruleset in `nft` syntax; deleting routerd's tables first makes re-applying it idempotent.
    pub(crate) fn to_nft(&self) -> String {
        self.to_nft_with_counters(&Counters::new())
    }

    /// Like [`Ruleset::to_nft`], with each rule's counter starting from its value in `counters` (by the
    /// rule's comment, a hash of the rule itself: a rule that stays the same keeps counting across rebuilds, a
    /// changed one starts at zero).
    pub(crate) fn to_nft_with_counters(&self, counters: &Counters) -> String {
        let mut text = String::new();
        for table in &self.tables {
            let _ = writeln!(text, "table {} {}", table.family, table.name);
            let _ = writeln!(text, "delete table {} {}", table.family, table.name);
        }
        for table in &self.tables {
            let _ = writeln!(text, "table {} {} {{", table.family, table.name);
            if let Some(flowtable) = &table.flowtable {
                let _ = writeln!(text, "    {flowtable}");
            }
            for chain in &table.chains {
                let _ = writeln!(text, "    chain {} {{", chain.name);
                if let Some(base) = &chain.base {
                    let _ = writeln!(text, "        {base}");
                }
                for rule in &chain.rules {
                    let id = comment(table, chain.name, rule);
                    let rule = match counters.get(&id) {
                        Some((packets, bytes)) => {
                            rule.replacen("counter", &format!("counter packets {packets} bytes {bytes}"), 1)
                        }
                        None => rule.clone(),
                    };
                    let _ = writeln!(text, "        {rule} comment \"{id}\"");
                }
                let _ = writeln!(text, "    }}");
            }
            let _ = writeln!(text, "}}");
        }
        text
    }
}

/// Counter values by rule comment.
pub(crate) type Counters = std::collections::HashMap<String, (u64, u64)>;

/// What a rule's counter means for the metrics: `forwarded/FAMILY`, `dropped/CHAIN/FAMILY/REASON` or
/// `nat/KIND`, from the rule itself.
pub(crate) fn accounting_tag(table: &Table, chain: &str, rule: &str) -> Option<String> {
    let family = if rule.contains("meta nfproto ipv4") {
        "ipv4"
    } else if rule.contains("meta nfproto ipv6") {
        "ipv6"
    } else {
        "any"
    };
    match (table.name, chain) {
        ("routerd", "forwarded") => Some(format!("forwarded/{family}")),
        ("routerd", "input" | "forward") if rule.ends_with("counter drop") => {
            let reason = if rule.contains("ct state invalid") { "invalid" } else { "policy" };
            Some(format!("dropped/{chain}/{family}/{reason}"))
        }
        ("routerd_nat", "prerouting") if rule.contains("dnat to") => Some("nat/port_forward".into()),
        ("routerd_nat", "postrouting") if rule.contains("ct status dnat") => Some("nat/hairpin".into()),
        ("routerd_nat", "postrouting") if rule.contains("masquerade") => Some("nat/masquerade".into()),
        _ => None,
    }
}

/// A rule's comment: its identity, then its accounting tag if it has one (`r0123… dropped/input/ipv4/policy`).
/// Counters carry over and metrics are read by this comment.
fn comment(table: &Table, chain: &str, rule: &str) -> String {
    let id = rule_id(table, chain, rule);
    match accounting_tag(table, chain, rule) {
        Some(tag) => format!("{id} {tag}"),
        None => id,
    }
}

/// A rule's identity: FNV-1a of its table, chain and text, in hex.
fn rule_id(table: &Table, chain: &str, rule: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in format!("{} {} {chain} {rule}", table.family, table.name).bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("r{hash:016x}")
}

/// What reaches the router itself: established flows, the LANs, DHCP replies and RFC 4890 ICMP from the uplink.
fn input_chain(input: &RulesetInput, uplink: &str, lans: &str) -> Chain {
    let mut input_rules: Vec<String> = vec![
        "meta nfproto ipv4 ct state invalid counter drop".into(),
        "meta nfproto ipv6 ct state invalid counter drop".into(),
        "ct state established,related counter accept".into(),
        "iif \"lo\" accept".into(),
    ];
    if !input.lans.is_empty() {
        // Management API, DNS, DHCP and metrics: only from the LANs (and loopback, above).
        input_rules.push(format!("iifname {lans} counter accept"));
    }
    input_rules.extend([
        format!("iifname {uplink} udp sport 67 udp dport 68 counter accept"),
        format!("iifname {uplink} ip6 saddr fe80::/10 udp sport 547 udp dport 546 counter accept"),
        format!("iifname {uplink} icmpv6 type {{ {ICMPV6_INPUT} }} counter accept"),
        format!("iifname {uplink} icmp type {{ {ICMP_INPUT} }} limit rate 100/second counter accept"),
        // One drop rule per family, so the metrics can tell them apart (an inet table sees only these).
        "meta nfproto ipv4 counter drop".into(),
        "meta nfproto ipv6 counter drop".into(),
    ]);
    Chain {
        name: "input",
        base: Some("type filter hook input priority filter; policy drop;".into()),
        rules: input_rules,
    }
}

/// What the router forwards: LAN to internet and between LANs, port forwards, pinholes, RFC 4890 ICMPv6.
fn forward_chain(input: &RulesetInput, uplink: &str, lans: &str) -> Chain {
    let mut forward_rules = vec![
        // MSS clamping for links with a smaller MTU upstream (PPPoE, tunnels).
        format!("oifname {uplink} tcp flags syn / syn,rst tcp option maxseg size set rt mtu"),
        "meta nfproto ipv4 ct state invalid counter drop".into(),
        "meta nfproto ipv6 ct state invalid counter drop".into(),
    ];
    if input.flowtable {
        // Established TCP and UDP flows leave the slow path: the kernel forwards them from ingress.
        forward_rules.push("ct state established meta l4proto { tcp, udp } flow add @fastpath".into());
    }
    forward_rules.push("ct state established,related counter accept".to_string());
    if !input.lans.is_empty() {
        forward_rules.push(format!("iifname {lans} oifname {uplink} counter accept"));
        forward_rules.push(format!("iifname {lans} oifname {lans} counter accept"));
    }
    forward_rules.extend([
        // Port forwards: DNAT'ed in prerouting.
        format!("iifname {uplink} ct status dnat counter accept"),
        format!("iifname {uplink} icmpv6 type {{ {ICMPV6_FORWARD} }} counter accept"),
    ]);
    for pinhole in &input.pinholes {
        forward_rules.push(format!(
            "iifname {uplink} ip6 daddr {} {} dport {} counter accept",
            pinhole.address, pinhole.protocol, pinhole.port
        ));
    }
    forward_rules.extend(["meta nfproto ipv4 counter drop".into(), "meta nfproto ipv6 counter drop".into()]);
    Chain {
        name: "forward",
        base: Some("type filter hook forward priority filter; policy drop;".into()),
        rules: forward_rules,
    }
}

/// Port forwards (DNAT), masquerade on the uplink and hairpin NAT.
fn nat_table(input: &RulesetInput, uplink: &str) -> Table {
    // Forwards apply to every address of the router except loopback and LAN ones, so they keep working
    // when the uplink address changes.
    let mut excluded = vec!["127.0.0.0/8".to_string()];
    excluded.extend(input.lan_networks.iter().map(|(_, _, router)| router.to_string()));
    let mut prerouting = Vec::new();
    for forward in &input.forwards {
        for protocol in forward.protocols.names() {
            // Port for port: the same ports keep theirs, one port maps to one, a shifted range through a map
            // (a plain port range in `dnat to` would pick any port of it, not the matching one).
            let mapping = if forward.ports == forward.dest_ports {
                forward.dest_addr.to_string()
            } else if forward.ports.start() == forward.ports.end() {
                format!("{}:{}", forward.dest_addr, forward.dest_ports.start())
            } else {
                let pairs: Vec<String> = forward
                    .ports
                    .clone()
                    .zip(forward.dest_ports.clone())
                    .map(|(from, to)| format!("{from} : {to}"))
                    .collect();
                format!("{} : {protocol} dport map {{ {} }}", forward.dest_addr, pairs.join(", "))
            };
            prerouting.push(format!(
                "fib daddr type local ip daddr != {{ {} }} {protocol} dport {} counter dnat to {mapping}",
                excluded.join(", "),
                range(&forward.ports)
            ));
        }
    }
    let mut postrouting = vec![format!("oifname {uplink} counter masquerade")];
    for (network, prefix_len, _) in &input.lan_networks {
        // Hairpin: a LAN device using the public address reaches a forward on its own LAN; the reply must
        // come back through the router, so the source is the router too.
        postrouting.push(format!(
            "ip saddr {network}/{prefix_len} ip daddr {network}/{prefix_len} ct status dnat counter masquerade"
        ));
    }
    Table {
        family: "ip",
        name: "routerd_nat",
        flowtable: None,
        chains: vec![
            Chain {
                name: "prerouting",
                base: Some("type nat hook prerouting priority dstnat; policy accept;".into()),
                rules: prerouting,
            },
            Chain {
                name: "postrouting",
                base: Some("type nat hook postrouting priority srcnat; policy accept;".into()),
                rules: postrouting,
            },
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{PortForwarding, forwards::parse_all};

    fn input() -> RulesetInput {
        let entries = [
            PortForwarding {
                proto: "tcp".into(),
                port: "8080".into(),
                dest_addr: "192.0.2.23".into(),
                dest_port: "80".into(),
                ..Default::default()
            },
            PortForwarding {
                proto: "udp".into(),
                port: "51820".into(),
                dest_addr: "192.0.2.5".into(),
                dest_port: String::new(),
                ..Default::default()
            },
            PortForwarding {
                proto: "tcp,udp".into(),
                port: "8040-8042".into(),
                dest_addr: "192.0.2.23".into(),
                dest_port: "9040-9042".into(),
                ..Default::default()
            },
        ];
        let (forwards, problems) = parse_all(&entries);
        assert!(problems.is_empty());
        RulesetInput {
            uplink: "uplink0".into(),
            lans: vec!["lan0".into(), "lan1".into()],
            lan_networks: vec![(Ipv4Addr::new(192, 0, 2, 0), 24, Ipv4Addr::new(192, 0, 2, 1))],
            forwards,
            pinholes: vec![Pinhole {
                address: "2001:db8:100::23".parse().expect("literal"),
                protocol: "tcp",
                port: 443,
            }],
            flowtable: false,
        }
    }

    #[test]
    fn with_flowtables_established_flows_take_the_fast_path() {
        let text = Ruleset::build(&RulesetInput { flowtable: true, ..input() }).to_nft();
        let definition =
            "flowtable fastpath { hook ingress priority filter; devices = { \"lan0\", \"lan1\", \"uplink0\" }; }";
        assert!(text.contains(definition), "{text}");
        let forward = &text[text.find("chain forward").expect("the forward chain")..];
        let offload = forward.find("flow add @fastpath").expect("the offload rule");
        let established = forward.find("ct state established,related counter accept").expect("the accept rule");
        assert!(offload < established, "offloaded before the slow path accepts: {text}");
        assert!(!Ruleset::build(&input()).to_nft().contains("flowtable"));
    }

    #[test]
    fn the_lockdown_forwards_nothing_new_and_keeps_the_router_reachable_from_the_lans() {
        let full = Ruleset::build(&input());
        let lockdown = Ruleset::lockdown(&input());
        let chain = |ruleset: &Ruleset, name: &str| {
            ruleset.tables.iter().flat_map(|t| &t.chains).find(|c| c.name == name).cloned().expect("chain")
        };
        let forward = chain(&lockdown, "forward");
        assert!(forward.base.as_deref().is_some_and(|b| b.contains("policy drop")));
        let accepts: Vec<&String> = forward.rules.iter().filter(|r| r.contains("accept")).collect();
        assert_eq!(accepts, ["ct state established,related counter accept"], "{forward:?}");
        assert_eq!(chain(&lockdown, "input"), chain(&full, "input"), "the router's own services stay reachable");
        assert!(chain(&lockdown, "prerouting").rules.is_empty(), "no port forward");
        let text = lockdown.to_nft();
        assert!(!text.contains("dnat to") && !text.contains("2001:db8:100::23"), "no port forward or pinhole: {text}");
        // The same tables: the full ruleset replaces the lockdown (and the other way round) in one transaction.
        let names = |r: &Ruleset| r.tables.iter().map(|t| (t.family, t.name)).collect::<Vec<_>>();
        assert_eq!(names(&lockdown), names(&full));
        assert!(text.starts_with("table inet routerd\ndelete table inet routerd\n"), "{text}");
    }

    #[test]
    fn without_a_lan_nothing_is_accepted_from_one() {
        let lonely = RulesetInput { lans: Vec::new(), lan_networks: Vec::new(), ..input() };
        for ruleset in [Ruleset::build(&lonely), Ruleset::lockdown(&lonely)] {
            let text = ruleset.to_nft();
            assert!(!text.contains("{  }") && !text.contains("iifname \"\""), "{text}");
            assert!(text.contains("policy drop"), "{text}");
        }
    }

    /// The whole ruleset against `testdata/ruleset.golden.nft` (which `nft -c -f` accepts). After a deliberate change, regenerate the file
    /// with `UPDATE_GOLDEN=1 cargo test -p routerd --lib firewall` and review the diff.
    #[test]
    fn golden_ruleset() {
        let text = Ruleset::build(&input()).to_nft();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/firewall/testdata/ruleset.golden.nft");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(path, &text).expect("writing the golden file");
        }
        let golden = std::fs::read_to_string(path).expect("the golden file");
        assert_eq!(text, golden, "the ruleset changed; see the test's doc comment");
    }

    /// The lockdown ruleset against `testdata/lockdown.golden.nft` (which `nft -c -f` accepts too).
    #[test]
    fn golden_lockdown() {
        let text = Ruleset::lockdown(&input()).to_nft();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/firewall/testdata/lockdown.golden.nft");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(path, &text).expect("writing the golden file");
        }
        let golden = std::fs::read_to_string(path).expect("the golden file");
        assert_eq!(text, golden, "the lockdown ruleset changed; see golden_ruleset's doc comment");
    }

    #[test]
    fn counters_carry_over_to_the_same_rule() {
        let ruleset = Ruleset::build(&input());
        let plain = ruleset.to_nft();
        let id = plain
            .lines()
            .find(|l| l.contains("masquerade") && l.contains("oifname"))
            .and_then(|l| l.rsplit_once("comment \"").map(|(_, id)| id.trim_end_matches('"').to_string()))
            .expect("a commented masquerade rule");
        let counters = Counters::from([(id, (42, 4200))]);
        let text = ruleset.to_nft_with_counters(&counters);
        assert!(text.contains("oifname \"uplink0\" counter packets 42 bytes 4200 masquerade"), "{text}");
        assert_eq!(text.matches("packets 42").count(), 1);
    }

    #[test]
    fn drops_forwards_and_nat_are_tagged_for_the_metrics() {
        let text = Ruleset::build(&input()).to_nft();
        for tag in [
            "forwarded/ipv4",
            "forwarded/ipv6",
            "dropped/input/ipv4/policy",
            "dropped/input/ipv6/invalid",
            "dropped/forward/ipv4/invalid",
            "dropped/forward/ipv6/policy",
            "nat/masquerade",
            "nat/port_forward",
            "nat/hairpin",
        ] {
            assert!(text.contains(&format!(" {tag}\"")), "{tag} missing: {text}");
        }
        assert!(!text.contains("/any"), "every accounted rule names its family: {text}");
    }

    #[test]
    fn building_twice_gives_the_same_ruleset() {
        assert_eq!(Ruleset::build(&input()), Ruleset::build(&input()));
        let text = Ruleset::build(&input()).to_nft();
        assert!(text.starts_with("table inet routerd\ndelete table inet routerd\n"), "idempotent: {text}");
        assert_eq!(text.matches("dnat to").count(), 4, "one per protocol: {text}");
    }
}
