//! routerd's LAN services with real clients: DHCPv4 leases for udhcpc and dhclient, the lease API and rtrctl,
//! static leases, and leases surviving a restart.

use std::time::Duration;

use integration::{DhcpClientKind, Lab, LabOptions};
use serde_json::Value;

const LEASE_TIMEOUT: Duration = Duration::from_secs(20);

fn leases(lab: &Lab) -> Vec<Value> {
    let output = lab.check(lab.router().rtrctl(&["-o", "json", "leases", "list"]), "rtrctl leases list");
    assert!(output.success, "{}", output.combined());
    serde_json::from_str::<Vec<Value>>(&output.stdout).expect("a JSON array")
}

fn in_range(addr: &str) -> bool {
    addr.strip_prefix("192.0.2.").and_then(|h| h.parse::<u8>().ok()).is_some_and(|h| (100..=199).contains(&h))
}

#[test]
fn udhcpc_and_dhclient_get_leases_with_the_router_as_gateway_and_dns() {
    let lab = Lab::start(LabOptions::default()).expect("the lab starts");
    let udhcpc = lab.check(
        // busybox -x cuts a value at a space, so the space case is a unit test of the sanitiser.
        lab.lan(1).start_dhcp_client(DhcpClientKind::Udhcpc { hostname: Some("Kitchen_Tablet".into()) }),
        "udhcpc",
    );
    let dhclient = lab.check(
        lab.lan(2).start_dhcp_client(DhcpClientKind::Dhclient4 { hostname: Some("study-laptop".into()) }),
        "dhclient",
    );
    let first = lab.check(udhcpc.wait_bound(LEASE_TIMEOUT), "udhcpc lease");
    let second = lab.check(dhclient.wait_bound(LEASE_TIMEOUT), "dhclient lease");
    let (ip1, ip2) = (first.get("ip").unwrap_or_default(), second.get("new_ip_address").unwrap_or_default());
    assert!(in_range(ip1) && in_range(ip2) && ip1 != ip2, "{first:?} {second:?}");
    assert_eq!(first.get("router"), Some("192.0.2.1"));
    assert_eq!(first.get("dns"), Some("192.0.2.1"));
    assert_eq!(first.get("domain"), Some("lan"));
    assert_eq!(first.get("mask"), Some("24"));
    assert_eq!(second.get("new_routers"), Some("192.0.2.1"));
    assert_eq!(second.get("new_domain_name_servers"), Some("192.0.2.1"));
    assert_eq!(second.get("new_dhcp_lease_time"), Some("1200"));

    let listed = leases(&lab);
    let find = |ip: &str| listed.iter().find(|l| l["addr"] == ip).cloned().unwrap_or_default();
    assert_eq!(find(ip1)["hostname"], "kitchen-tablet", "sanitised: {listed:?}");
    assert_eq!(find(ip1)["hardware_addr"], lab.lan(1).mac());
    assert_eq!(find(ip2)["hostname"], "study-laptop");
    assert_eq!(find(ip2)["state"], "active");
    assert_eq!(find(ip2)["interface"], "lan0");

    // A stopped routerd leaves router7's file, and the leases survive the restart.
    lab.router().stop_routerd();
    let file: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(lab.router().perm().join("dhcp4d/leases.json")).expect("leases.json"),
    )
    .expect("JSON");
    assert!(file.iter().any(|l| l["addr"] == ip1 && l["hostname"] == "kitchen-tablet"), "{file:?}");
    lab.check(lab.router().start_routerd(), "restart");
    let after = leases(&lab);
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(after.iter().any(|l| l["addr"] == ip1) && after.iter().any(|l| l["addr"] == ip2));
}

#[test]
fn a_static_lease_and_an_owner_given_name_are_honoured() {
    let lab = Lab::start(LabOptions { lan_devices: 1, ..LabOptions::default() }).expect("the lab starts");
    let mac = lab.lan(1).mac();
    let added = lab.check(
        lab.router().rtrctl(&["-o", "json", "leases", "static", "add", &mac, "192.0.2.50", "--hostname", "printer"]),
        "static add",
    );
    assert!(added.success, "{}", added.combined());
    let client =
        lab.check(lab.lan(1).start_dhcp_client(DhcpClientKind::Udhcpc { hostname: Some("npi1234".into()) }), "udhcpc");
    let bound = lab.check(client.wait_bound(LEASE_TIMEOUT), "lease");
    assert_eq!(bound.get("ip"), Some("192.0.2.50"), "the static address, outside the range");
    let lease = leases(&lab).into_iter().find(|l| l["hardware_addr"] == mac).expect("listed");
    assert_eq!(lease["state"], "static");
    assert_eq!(lease["hostname"], "printer", "a static lease keeps its name");

    let renamed = lab.check(lab.router().rtrctl(&["leases", "set-hostname", &mac, "Office Printer"]), "set-hostname");
    assert!(renamed.success && renamed.stdout.contains("office-printer"), "{}", renamed.combined());
    // Bad input is refused with a message naming what is wrong, and changes nothing.
    for (args, expected) in [
        (vec!["leases", "static", "add", "not-a-mac", "192.0.2.51"], "not a MAC"),
        (vec!["leases", "static", "add", "02:00:00:00:09:09", "198.51.100.9"], "not a host address of any LAN"),
        (vec!["leases", "static", "add", "02:00:00:00:09:09", "192.0.2.50"], "is leased to"),
        (vec!["leases", "set-hostname", &mac, "???"], "no letters or digits"),
        (vec!["leases", "static", "rm", "02:00:00:00:09:09"], "no static lease"),
    ] {
        let output = lab.check(lab.router().rtrctl(&args), "rtrctl");
        assert!(!output.success && output.stderr.contains(expected), "{args:?}: {}", output.combined());
    }
    let removed = lab.check(lab.router().rtrctl(&["leases", "static", "rm", &mac]), "static rm");
    assert!(removed.success, "{}", removed.combined());
    assert!(leases(&lab).iter().all(|l| l["hardware_addr"] != mac));
}

#[test]
fn a_full_pool_offers_nothing_until_a_lease_is_given_back() {
    let lab = Lab::start(LabOptions { lan_devices: 3, start_routerd: false, ..LabOptions::default() })
        .expect("the lab starts");
    let routerd_json =
        serde_json::json!({ "hostname": "router", "dhcp_ranges": { "lan0": "192.0.2.100-192.0.2.101" } });
    std::fs::write(lab.router().perm().join("routerd.json"), routerd_json.to_string()).expect("routerd.json");
    lab.check(lab.router().start_routerd(), "routerd");
    let clients: Vec<_> = (1..=2)
        .map(|n| lab.check(lab.lan(n).start_dhcp_client(DhcpClientKind::Udhcpc { hostname: None }), "udhcpc"))
        .collect();
    for client in &clients {
        lab.check(client.wait_bound(LEASE_TIMEOUT), "a lease from the two-address pool");
    }
    let third = lab.check(lab.lan(3).start_dhcp_client(DhcpClientKind::Udhcpc { hostname: None }), "udhcpc");
    lab.check(
        integration::wait::until("routerd to report the full pool", Duration::from_secs(10), || {
            Ok(lab.router().routerd_log().contains("the pool is full").then_some(()))
        }),
        "pool exhaustion",
    );
    assert!(!third.events().iter().any(|e| e.name == "bound"), "{:?}", third.events());

    // lan1 gives its lease back (busybox udhcpc releases on SIGUSR2): the waiting device gets that address.
    let released =
        clients[0].events().into_iter().find(|e| e.name == "bound").and_then(|e| e.get("ip").map(str::to_string));
    // SAFETY: signalling a client process the lab started.
    unsafe { libc::kill(clients[0].pid as libc::pid_t, libc::SIGUSR2) };
    let reclaimed = lab.check(third.wait_bound(LEASE_TIMEOUT), "the released address, reclaimed");
    assert_eq!(reclaimed.get("ip").map(str::to_string), released);
}

fn delegated_prefix(lab: &Lab) -> String {
    lab.check(lab.router().wait_for_delegated_prefix(LEASE_TIMEOUT), "prefix delegation")
}

#[test]
fn devices_get_ipv6_from_routerds_advertisements() {
    let lab = Lab::start(LabOptions {
        isp: integration::IspOptions { timers: integration::Timers::Short, ..Default::default() },
        ..LabOptions::default()
    })
    .expect("the lab starts");
    let prefix = delegated_prefix(&lab);
    let lan0_subnet = format!("{}/64", prefix.trim_end_matches("/56"));
    let router_dns = format!("{}1", prefix.trim_end_matches("/56"));

    let advert = lab.check(lab.lan(1).rdisc6(), "rdisc6 on lan1");
    let pio = advert.prefixes.iter().find(|p| p.prefix == lan0_subnet).unwrap_or_else(|| panic!("{}", advert.raw));
    assert!(pio.on_link && pio.autonomous, "{}", advert.raw);
    assert!(pio.preferred.is_some_and(|p| p > 0) && pio.valid <= Some(40), "the ISP's short lifetimes: {}", advert.raw);
    assert_eq!(advert.rdnss, [router_dns], "{}", advert.raw);
    assert!(advert.raw.contains("DNS search list") && advert.raw.contains("lan"), "{}", advert.raw);
    assert_eq!(advert.mtu, Some(1500));
    assert!(!advert.managed && !advert.other_config, "SLAAC, no DHCPv6 on the LAN");

    // The kernel's SLAAC on a device forms an address in the LAN's /64.
    let slaac = lab.check(
        integration::wait::until("a SLAAC address on lan2", Duration::from_secs(15), || {
            let addrs = lab.lan(2).global_ipv6_addresses()?;
            Ok(addrs.into_iter().find(|a| a.starts_with(prefix.trim_end_matches("::/56"))))
        }),
        "SLAAC",
    );
    assert!(slaac.contains(":ff:fe00:202"), "EUI-64 of lan2's MAC: {slaac}");

    // Renumbering: the new /64 is advertised and the old one with preferred lifetime 0 (RFC 9096).
    lab.check(lab.isp().renumber_dhcp6("2001:db8:200::"), "the ISP renumbers");
    lab.check(
        lab.router().wait_for_status("the new prefix", Duration::from_secs(40), |s| {
            s["uplink"]["dhcp6"]["prefixes"][0].as_str().is_some_and(|p| p.starts_with("2001:db8:200:"))
        }),
        "renumbered",
    );
    let advert = lab.check(
        integration::wait::until("an advert with both prefixes", Duration::from_secs(10), || {
            let advert = lab.lan(1).rdisc6()?;
            Ok((advert.prefixes.len() == 2).then_some(advert))
        }),
        "rdisc6 after renumbering",
    );
    let old = advert.prefixes.iter().find(|p| p.prefix == lan0_subnet).unwrap_or_else(|| panic!("{}", advert.raw));
    assert_eq!(old.preferred, Some(0), "{}", advert.raw);
    assert!(
        advert.prefixes.iter().any(|p| p.prefix.starts_with("2001:db8:200:") && p.preferred > Some(0)),
        "{}",
        advert.raw
    );
}

#[test]
fn malformed_dhcp_dns_and_router_solicitations_neither_crash_nor_stall_routerd() {
    let lab = Lab::start(LabOptions::default()).expect("the lab starts");
    delegated_prefix(&lab);
    lab.check(lab.lan(1).set_static_ipv4(), "lan1's address (for the DNS packets)");
    let script = lab.work_dir().join("bad_packets.py");
    std::fs::write(&script, include_str!("bad_packets.py")).expect("script");
    let sent = lab.check(
        lab.lan(1).netns().run("/usr/bin/python3", &[&script.to_string_lossy(), "eth0"]),
        "scapy (Debian package python3-scapy)",
    );
    assert!(sent.contains("malformed packets"), "{sent}");

    // Still serving: a new client gets a lease, rdisc6 an advertisement, and nothing was restarted.
    let client =
        lab.check(lab.lan(2).start_dhcp_client(DhcpClientKind::Udhcpc { hostname: Some("after".into()) }), "udhcpc");
    lab.check(client.wait_bound(LEASE_TIMEOUT), "a lease after the bad packets");
    let advert = lab.check(lab.lan(2).rdisc6(), "rdisc6 after the bad packets");
    assert!(!advert.prefixes.is_empty(), "{}", advert.raw);
    let answer = lab.check(lab.lan(1).dig("192.0.2.1", "www.example.org", "A"), "dig after the bad packets");
    assert_eq!(answer, ["203.0.113.80"]);
    assert!(lab.router().routerd_running());
    let status = lab.check(lab.router().status(), "status");
    let restarts: Vec<_> = status["services"].as_array().into_iter().flatten().filter(|s| s["restarts"] != 0).collect();
    assert!(restarts.is_empty(), "{restarts:?}");
    // The lease with the unusable name has none, not a broken one.
    for lease in leases(&lab) {
        let name = lease["hostname"].as_str().unwrap_or_default();
        assert!(
            name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') && name.len() <= 63,
            "{lease}"
        );
    }
}

#[test]
fn dns_answers_local_names_forwards_the_rest_and_blocks_rebinding() {
    use integration::addresses::*;
    let lab = Lab::start(LabOptions::default()).expect("the lab starts");
    let client = lab
        .check(lab.lan(2).start_dhcp_client(DhcpClientKind::Dhclient4 { hostname: Some("lan2".into()) }), "dhclient");
    let lease = lab.check(client.wait_bound(LEASE_TIMEOUT), "lease");
    let lan2 = lease.get("new_ip_address").unwrap_or_default().to_string();
    lab.check(lab.lan(1).set_static_ipv4(), "lan1 address");
    let router = ROUTER_LAN_V4.to_string();
    let dig = |name: &str, kind: &str| lab.check(lab.lan(1).dig(&router, name, kind), "dig");

    assert_eq!(dig("lan2.lan", "A"), std::slice::from_ref(&lan2));
    assert_eq!(dig("lan2", "A"), std::slice::from_ref(&lan2), "the bare host name too");
    assert_eq!(dig("router.lan", "A"), std::slice::from_ref(&router));
    let reverse: Vec<&str> = lan2.split('.').rev().collect();
    assert_eq!(dig(&format!("{}.in-addr.arpa", reverse.join(".")), "PTR"), ["lan2.lan."]);
    assert_eq!(dig("www.example.org", "A"), [INTERNET_HOST_V4.to_string()], "forwarded to the ISP");
    assert_eq!(dig("www.example.org", "AAAA"), [INTERNET_HOST_V6.to_string()]);
    // Over IPv6 too (its UDP sockets are apart from IPv4's): to the router's link-local address on the LAN.
    let shown = lab.router().netns().run("ip", &["-6", "-o", "addr", "show", "dev", "lan0", "scope", "link"]);
    let shown = lab.check(shown, "the router's link-local address");
    let link_local = shown.split_whitespace().nth(3).and_then(|a| a.split('/').next()).unwrap_or_default();
    assert!(link_local.starts_with("fe80:"), "no link-local address on lan0: {shown}");
    let over_ipv6 = lab.lan(1).dig(&format!("{link_local}%{}", integration::lan::INTERFACE), "lan2.lan", "A");
    assert_eq!(lab.check(over_ipv6, "dig over IPv6"), std::slice::from_ref(&lan2));
    let unknown =
        lab.check(integration::clients::dig_full(lab.lan(1).netns(), &router, "nowhere.example.com", "A"), "dig");
    assert!(unknown.stdout.contains("status: NXDOMAIN"), "{}", unknown.stdout);
    let nobody = lab.check(integration::clients::dig_full(lab.lan(1).netns(), &router, "nobody.lan", "A"), "dig");
    assert!(
        nobody.stdout.contains("status: NXDOMAIN") && nobody.stdout.contains(" aa"),
        "authoritative: {}",
        nobody.stdout
    );

    // Rebinding protection: a public name pointing into private space is dropped, an allowlisted one is not.
    assert!(dig(REBINDING_NAME.0, "A").is_empty(), "the private answer must be dropped");
    assert!(lab.router().routerd_log().contains("DNS rebinding protection"), "{}", lab.router().routerd_log());
    assert_eq!(dig(ALLOWLISTED_PRIVATE_NAME.0, "A"), [ALLOWLISTED_PRIVATE_NAME.1.to_string()]);

    // TCP, and the names survive a restart (the leases do).
    let tcp =
        lab.check(lab.lan(1).netns().run("dig", &["+tcp", "+short", &format!("@{router}"), "lan2.lan"]), "dig +tcp");
    assert_eq!(tcp.trim(), lan2);
    lab.router().stop_routerd();
    lab.check(lab.router().start_routerd(), "restart");
    let again = lab.check(
        integration::wait::until("DNS after the restart", Duration::from_secs(10), || {
            Ok(lab.lan(1).dig(&router, "lan2.lan", "A").ok().filter(|a| !a.is_empty()))
        }),
        "lan2.lan after a restart",
    );
    assert_eq!(again, [lan2]);
    // Never on the uplink: the ISP side gets no answer from the router's uplink address.
    let status = lab.check(lab.router().status(), "status");
    let uplink = status["uplink"]["dhcp4"]["addr"].as_str().unwrap_or_default().trim_end_matches("/24").to_string();
    let from_isp =
        lab.check(integration::clients::dig_full(lab.isp().netns(), &uplink, "router.lan", "A"), "dig from the ISP");
    assert!(!from_isp.success || !from_isp.stdout.contains("ANSWER SECTION"), "{}", from_isp.stdout);
}

#[test]
fn rtrctl_watches_lease_changes_as_they_happen() {
    let lab = Lab::start(LabOptions { lan_devices: 1, ..LabOptions::default() }).expect("the lab starts");
    let router = lab.router();
    let log = lab.work_dir().join("watch.log");
    let args: Vec<String> = [
        "--router",
        "127.0.0.1:9339",
        "--identity",
        &router.identity().to_string_lossy(),
        "-o",
        "json",
        "leases",
        "watch",
    ]
    .map(String::from)
    .to_vec();
    lab.check(
        lab.tracker().spawn("rtrctl leases watch", router.netns(), router.rtrctl_binary(), &args, &[], &log),
        "watch",
    );
    let events = || -> Vec<Value> {
        std::fs::read_to_string(&log).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    };
    let mac = lab.lan(1).mac();
    let client =
        lab.check(lab.lan(1).start_dhcp_client(DhcpClientKind::Udhcpc { hostname: Some("watched".into()) }), "udhcpc");
    lab.check(client.wait_bound(LEASE_TIMEOUT), "lease");
    let has =
        |kind: &str, check: &dyn Fn(&Value) -> bool| events().iter().any(|e| e["event"] == kind && check(&e["lease"]));
    lab.check(
        integration::wait::until("a created event", Duration::from_secs(10), || {
            Ok(has("created", &|l| l["hardware_addr"] == mac && l["hostname"] == "watched").then_some(()))
        }),
        "created",
    );
    lab.check(lab.router().rtrctl(&["leases", "set-hostname", &mac, "renamed"]), "set-hostname");
    lab.check(
        integration::wait::until("an updated event", Duration::from_secs(10), || {
            Ok(has("updated", &|l| l["hostname_override"] == "renamed").then_some(()))
        }),
        "updated",
    );
}

#[test]
fn dns_fails_over_to_the_next_upstream_and_retries_truncated_answers_over_tcp() {
    use integration::addresses::*;
    let lab = Lab::start(LabOptions { lan_devices: 1, start_routerd: false, ..LabOptions::default() })
        .expect("the lab starts");
    // The first upstream does not exist (nothing answers at .2); the ISP's resolver is second.
    let routerd_json = serde_json::json!({
        "hostname": "router",
        "dhcp_ranges": { "lan0": LAN_DHCP_RANGE },
        "dns_upstreams": ["198.51.100.2", ISP_V4.to_string()],
    });
    std::fs::write(lab.router().perm().join("routerd.json"), routerd_json.to_string()).expect("routerd.json");
    lab.check(lab.router().start_routerd(), "routerd");
    lab.check(
        lab.router().wait_for_status("an uplink lease", LEASE_TIMEOUT, |s| s["uplink"]["dhcp4"]["state"] == "bound"),
        "uplink",
    );
    lab.check(lab.lan(1).set_static_ipv4(), "lan1 address");
    let router = ROUTER_LAN_V4.to_string();
    let answer = lab.check(
        lab.lan(1)
            .netns()
            .run("dig", &["+short", "+time=6", "+tries=1", &format!("@{router}"), "www.example.com", "A"]),
        "dig through a failing first upstream",
    );
    assert_eq!(answer.trim(), INTERNET_HOST_V4.to_string());
    // Too big for 512 bytes: the resolver sets TC over UDP and routerd asks again over TCP.
    let txt = lab.check(
        lab.lan(1).netns().run("dig", &["+short", "+time=6", "+tries=1", &format!("@{router}"), LARGE_TXT_NAME, "TXT"]),
        "dig TXT",
    );
    assert_eq!(txt.matches('a').count(), 250, "{txt}");
    assert!(txt.contains(&"c".repeat(250)), "all {LARGE_TXT_STRINGS} strings arrived: {txt}");
}

#[test]
fn a_discover_flood_from_made_up_macs_cannot_keep_a_new_device_off_the_lan() {
    let lab = Lab::start(LabOptions::default()).expect("the lab starts");
    // A device that had its lease before the flood.
    let resident =
        lab.check(lab.lan(2).start_dhcp_client(DhcpClientKind::Udhcpc { hostname: Some("resident".into()) }), "udhcpc");
    let before = lab.check(resident.wait_bound(LEASE_TIMEOUT), "a lease before the flood");
    resident.stop();
    // Three times the lab's range (192.0.2.100-199) in DISCOVERs: every free address is offered to the flood.
    let sent = dhcp_flood(&lab, &["discover", "300"]);
    assert!(sent.contains("sent 300 DISCOVERs"), "{sent}");
    let offered = lab.check(
        integration::wait::until("the flood's offers", LEASE_TIMEOUT, || {
            let text = integration::clients::curl(lab.router().netns(), "http://127.0.0.1:8066/metrics")?;
            let value = text
                .lines()
                .find_map(|l| l.strip_prefix("routerd_dhcp4_server_offers_outstanding "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0);
            Ok((value >= 90.0).then_some(value))
        }),
        "offers outstanding in the metrics",
    );
    println!("offers outstanding after the flood: {offered}");
    // The owner sees them too: each an address of the range held for one of the flood's MACs.
    let listed = lab.check(lab.router().rtrctl(&["-o", "json", "leases", "list", "--state", "offered"]), "rtrctl");
    assert!(listed.success, "{}", listed.combined());
    let offers = serde_json::from_str::<Vec<Value>>(&listed.stdout).expect("a JSON array");
    let addrs: std::collections::BTreeSet<&str> = offers.iter().filter_map(|o| o["addr"].as_str()).collect();
    assert!(offers.len() >= 90 && addrs.len() == offers.len(), "{} offers listed: {}", offers.len(), listed.stdout);
    assert!(
        offers
            .iter()
            .all(|o| o["state"] == "offered" && o["hardware_addr"].as_str().is_some_and(|m| m.starts_with("0a:")))
    );
    assert!(addrs.iter().all(|a| in_range(a)) && before.get("ip").is_some_and(|ip| !addrs.contains(ip)), "{addrs:?}");
    // An offer is not a lease: the lease list (and so DNS) does not show them.
    assert!(leases(&lab).iter().all(|l| l["state"] != "offered"));
    // A new device gets an address at once, not after the flood's offers run out (60 s).
    let newcomer =
        lab.check(lab.lan(1).start_dhcp_client(DhcpClientKind::Udhcpc { hostname: Some("newcomer".into()) }), "udhcpc");
    let lease = lab.check(newcomer.wait_bound(Duration::from_secs(15)), "a lease for a new device during the flood");
    assert!(lease.get("ip").is_some_and(|ip| ip.starts_with("192.0.2.")), "{lease:?}");
    // The resident device keeps its address.
    let again =
        lab.check(lab.lan(2).start_dhcp_client(DhcpClientKind::Udhcpc { hostname: Some("resident".into()) }), "udhcpc");
    let after = lab.check(again.wait_bound(LEASE_TIMEOUT), "the resident's lease after the flood");
    assert_eq!(after.get("ip"), before.get("ip"));
}

/// Runs `dhcp_flood.py` (scapy) on lan1 with `args`; returns what it printed.
fn dhcp_flood(lab: &Lab, args: &[&str]) -> String {
    let script = lab.work_dir().join("dhcp_flood.py");
    std::fs::write(&script, include_str!("dhcp_flood.py")).expect("script");
    let mut all = vec![script.to_string_lossy().into_owned(), "eth0".to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    lab.check(lab.lan(1).netns().run("/usr/bin/python3", &all), "scapy (Debian package python3-scapy)")
}

#[test]
fn a_flood_that_leases_the_whole_pool_leaves_devices_their_leases_and_shows_in_diag_and_metrics() {
    let lab = Lab::start(LabOptions::default()).expect("the lab starts");
    let resident =
        lab.check(lab.lan(2).start_dhcp_client(DhcpClientKind::Udhcpc { hostname: Some("resident".into()) }), "udhcpc");
    let before = lab.check(resident.wait_bound(LEASE_TIMEOUT), "a lease before the flood");
    resident.stop();
    // Every address of the lab's range leased to a made-up client.
    let sent = dhcp_flood(&lab, &["request", "192.0.2.100", "192.0.2.199"]);
    assert!(sent.contains("sent 100 REQUESTs"), "{sent}");
    let metrics = lab.check(
        integration::wait::until("an exhausted pool in the metrics", LEASE_TIMEOUT, || {
            let text = integration::clients::curl(lab.router().netns(), "http://127.0.0.1:8066/metrics")?;
            Ok(text.contains("routerd_dhcp4_server_pool_free_addresses{interface=\"lan0\"} 0").then_some(text))
        }),
        "metrics",
    );
    assert!(metrics.contains("routerd_dhcp4_server_leases"), "{metrics}");
    let diag = lab.check(lab.router().rtrctl(&["diag"]), "rtrctl diag");
    assert!(!diag.success, "{}", diag.stdout);
    assert!(
        diag.stdout.lines().any(|l| l.contains('✘') && l.contains("free addresses") && l.contains("all 100")),
        "{}",
        diag.stdout
    );
    // The device that had a lease keeps it and renews it.
    let again =
        lab.check(lab.lan(2).start_dhcp_client(DhcpClientKind::Udhcpc { hostname: Some("resident".into()) }), "udhcpc");
    let after = lab.check(again.wait_bound(LEASE_TIMEOUT), "the resident's lease in a full pool");
    assert_eq!(after.get("ip"), before.get("ip"));
    again.stop();
}

#[test]
fn one_device_holding_dns_tcp_connections_cannot_keep_another_from_resolving() {
    let lab = lab_with_two_devices();
    // lan1 opens 40 idle DNS-over-TCP connections and holds them; it reports how many the router closed.
    let report = lab.work_dir().join("held.txt");
    let script = format!(
        "import socket, time\n\
         held = []\n\
         for _ in range(40):\n    s = socket.create_connection(('192.0.2.1', 53), timeout=5); held.append(s)\n\
         time.sleep(1)\n\
         closed = 0\n\
         for s in held:\n    s.setblocking(False)\n    try:\n        closed += s.recv(1) == b''\n    except BlockingIOError:\n        pass\n\
         open({:?}, 'w').write(f'closed {{closed}} of {{len(held)}}\\n')\n\
         time.sleep(20)\n",
        report.display().to_string()
    );
    let holder = python_in_background(&lab, 1, "dns-tcp-holder", script);
    let held = lab.check(
        integration::wait::until("the holder's report", LEASE_TIMEOUT, || {
            Ok(std::fs::read_to_string(&report).ok().filter(|t| t.contains("closed")))
        }),
        "report",
    );
    assert_eq!(held.trim(), "closed 32 of 40", "8 connections per device");
    // Another device still resolves over TCP while lan1 holds its share.
    let mut dig = lab.lan(2).netns().command("dig");
    dig.args(["+tcp", "+short", "+time=3", "@192.0.2.1", "www.example.org", "A"]);
    let answer = lab.check(integration::command::run_unchecked(&mut dig), "dig +tcp");
    assert_eq!(answer.stdout.trim(), "203.0.113.80", "{}", answer.combined());
    lab.tracker().stop(holder);
}

#[test]
fn a_device_flooding_dns_cannot_stop_another_from_resolving() {
    let lab = lab_with_two_devices();
    let routerd = lab.router().routerd_pid().expect("routerd runs");
    let kernel_drops_before = integration::flood::udp_receive_buffer_drops(routerd).unwrap_or(0);
    // lan1 sends queries for names nobody asked before (each would go upstream), as fast as a core sends them,
    // from 16 ports (so every one of routerd's sockets for the LAN gets its share), for 8 s.
    let target = "192.0.2.1:53".parse().expect("address");
    let floods: Vec<_> = (0..2u64)
        .map(|thread| {
            integration::flood::Flood::start(lab.lan(1).netns(), target, 16, Duration::from_secs(8), move |n, out| {
                integration::flood::dns_query(n as u16, &format!("r{thread}x{n}.example.com"), out)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    // Meanwhile lan2 resolves names, new to the cache too, one after the other.
    let mut answered = 0;
    for name in ["www.example.org", "example.net", "www.example.com", "example.org", "example.com"] {
        match lab.lan(2).dig("192.0.2.1", name, "A") {
            // dig retries a query that got no answer (as every resolver does); ";;" lines report such a try.
            Ok(answer) if answer.iter().filter(|l| !l.starts_with(";;")).eq(["203.0.113.80"].iter()) => answered += 1,
            other => println!("{name}: {other:?}"),
        }
    }
    let reports: Vec<_> = floods.into_iter().map(|f| lab.check(f.finish(), "the flood")).collect();
    let report = integration::flood::FloodReport::combined(&reports);
    let kernel_drops = integration::flood::udp_receive_buffer_drops(routerd).unwrap_or(0) - kernel_drops_before;
    let metrics =
        lab.check(integration::clients::curl(lab.router().netns(), "http://127.0.0.1:8066/metrics"), "metrics");
    let dropped = metrics.lines().find(|l| l.contains("outcome=\"dropped\"")).unwrap_or_default().to_string();
    // What routerd read is what the kernel did not drop for want of room; what lan1 offered over that is how far
    // beyond routerd's capacity the flood went.
    let read = report.sent.saturating_sub(kernel_drops).max(1);
    println!(
        "lan1 sent {} queries ({:.0}/s); the kernel dropped {kernel_drops} (routerd's receive buffers full); \
         offered/read {:.1}x; lan2 answered {answered} of 5; {dropped}",
        report.sent,
        report.per_second(),
        report.sent as f64 / read as f64
    );
    assert_eq!(answered, 5, "lan2's names stopped resolving during lan1's flood");
    assert!(lab.router().routerd_running());
}

/// Runs a Python `script` on LAN device `n` in the background (stopped by the lab); returns its PID.
fn python_in_background(lab: &Lab, n: usize, name: &str, script: String) -> u32 {
    let log = lab.work_dir().join(format!("{name}.log"));
    let python = std::path::Path::new("/usr/bin/python3");
    lab.check(lab.tracker().spawn(name, lab.lan(n).netns(), python, &["-c".to_string(), script], &[], &log), name)
}

/// A lab where lan1 has a fixed address (for traffic it crafts) and lan2 a lease from routerd.
fn lab_with_two_devices() -> Lab {
    let lab = Lab::start(LabOptions::default()).expect("the lab starts");
    lab.check(lab.lan(1).set_static_ipv4(), "lan1 address");
    let other = lab.check(lab.lan(2).start_dhcp_client(DhcpClientKind::Udhcpc { hostname: None }), "udhcpc");
    lab.check(other.wait_bound(LEASE_TIMEOUT), "lan2's lease");
    lab
}
