//! routerd's uplink against the lab's ISP: DHCPv4 lease, renewal, rebinding, and the promise to keep the
//! configuration across a restart while the ISP's server is down.

use std::time::Duration;

use integration::{Dhcpv6Server, IspOptions, Lab, LabOptions, Timers, addresses::*, clients, router::UPLINK};
use serde_json::Value;

const LEASE_TIMEOUT: Duration = Duration::from_secs(20);

fn lab_with_short_timers() -> Lab {
    Lab::start(LabOptions {
        isp: IspOptions { timers: Timers::Short, ..IspOptions::default() },
        ..LabOptions::default()
    })
    .expect("the lab starts")
}

fn dhcp4(status: &Value) -> &Value {
    &status["uplink"]["dhcp4"]
}

fn dhcp6(status: &Value) -> &Value {
    &status["uplink"]["dhcp6"]
}

fn delegated(lab: &Lab) -> Value {
    lab.check(
        lab.router().wait_for_status("a delegated prefix", LEASE_TIMEOUT, |s| {
            dhcp6(s)["state"] == "bound" && dhcp6(s)["prefixes"].as_array().is_some_and(|p| !p.is_empty())
        }),
        "DHCPv6 prefix delegation",
    )
}

fn bound_address(lab: &Lab) -> String {
    let status = lab.check(
        lab.router().wait_for_status("a DHCPv4 lease", LEASE_TIMEOUT, |s| dhcp4(s)["state"] == "bound"),
        "uplink lease",
    );
    dhcp4(&status)["addr"].as_str().unwrap_or_default().to_string()
}

/// `ip -4 -o addr show dev uplink0` and `ip -4 route` in the router namespace.
fn uplink_config(lab: &Lab) -> (String, String) {
    let router = lab.router().netns();
    let addrs = lab.check(router.ip(&["-4", "-o", "addr", "show", "dev", UPLINK]), "addresses");
    let routes = lab.check(router.ip(&["-4", "route", "show"]), "routes");
    (addrs, routes)
}

#[test]
fn uplink_gets_a_lease_applies_it_and_reaches_the_internet() {
    let lab = lab_with_short_timers();
    let cidr = bound_address(&lab);
    assert!(cidr.starts_with("198.51.100.1") && cidr.ends_with("/24"), "{cidr}");
    let address = cidr.trim_end_matches("/24").to_string();
    let status = lab.check(lab.router().status(), "status");
    assert_eq!(dhcp4(&status)["gateway"], ISP_V4.to_string());
    assert_eq!(dhcp4(&status)["dns_servers"], serde_json::json!([ISP_V4.to_string()]));
    assert!(dhcp4(&status)["renew_at"].is_string() && dhcp4(&status)["expires_at"].is_string(), "{status}");

    let (addrs, routes) = uplink_config(&lab);
    assert!(addrs.contains(&format!("inet {cidr}")), "{addrs}");
    assert!(routes.contains(&format!("default via {ISP_V4} dev {UPLINK}")), "{routes}");
    assert!(routes.contains(&format!("{ISP_V4} dev {UPLINK}")), "host route to the gateway: {routes}");

    // Through the ISP to the internet host, which sees the uplink address.
    let body = lab.check(clients::curl(lab.router().netns(), &format!("http://{INTERNET_HOST_V4}/")), "curl");
    assert_eq!(body.trim(), format!("client={address}"));

    // router7's files, atomically written.
    let lease: Value = serde_json::from_str(
        &std::fs::read_to_string(lab.router().perm().join("dhcp4/wire/lease.json")).expect("lease.json"),
    )
    .expect("lease.json is JSON");
    assert_eq!(lease["client_ip"], address);
    assert_eq!(lease["subnet_mask"], "255.255.255.0");
    assert_eq!(lease["router"], ISP_V4.to_string());
    assert!(lease["valid_until"].is_string());
    assert!(lab.router().perm().join("dhcp4/wire/ack").exists());
    // Forwarding is on, and the uplink still accepts RAs.
    let forwarding = lab.check(lab.router().netns().run("cat", &["/proc/sys/net/ipv4/ip_forward"]), "sysctl");
    assert_eq!(forwarding.trim(), "1");
    let accept_ra =
        lab.check(lab.router().netns().run("cat", &[&format!("/proc/sys/net/ipv6/conf/{UPLINK}/accept_ra")]), "sysctl");
    assert_eq!(accept_ra.trim(), "2");
}

#[test]
fn renews_at_t1_with_the_server_that_granted_the_lease() {
    let lab = lab_with_short_timers();
    bound_address(&lab);
    let requests = |log: &str| log.lines().filter(|l| l.contains("DHCPREQUEST") && l.contains(UPLINK_MAC)).count();
    // T1 is 15 s: a second REQUEST arrives (unicast, so dnsmasq logs it like any REQUEST) and is acknowledged.
    lab.check(
        integration::wait::until("a renewal in dnsmasq's log", Duration::from_secs(25), || {
            Ok((requests(&lab.isp().dhcp4_log()) >= 2).then_some(()))
        }),
        "renewal",
    );
    lab.check(
        lab.router()
            .wait_for_status("bound again after renewing", Duration::from_secs(5), |s| dhcp4(s)["state"] == "bound"),
        "bound",
    );
    assert!(lab.router().routerd_log().contains("T1 reached: renewing"), "{}", lab.router().routerd_log());
}

#[test]
fn rebinds_with_a_new_server_when_the_old_one_is_gone() {
    let lab = lab_with_short_timers();
    let cidr = bound_address(&lab);
    // The old server disappears: its unicast address no longer answers DHCP, and a new server that knows no
    // lease answers broadcasts.
    lab.isp().stop_dhcp4();
    let isp = lab.isp().netns();
    lab.check(isp.run("nft", &["add", "table", "inet", "lab"]), "nft");
    lab.check(isp.run("nft", &["add chain inet lab input { type filter hook input priority 0; }"]), "nft chain");
    lab.check(isp.run("nft", &["add rule inet lab input ip daddr 198.51.100.1 udp dport 67 drop"]), "nft rule");
    lab.check(lab.isp().start_dhcp4(true), "a new DHCP server");

    lab.check(
        integration::wait::until("rebinding in routerd's log", Duration::from_secs(40), || {
            Ok(lab.router().routerd_log().contains("rebinding with any server").then_some(()))
        }),
        "rebinding",
    );
    let status = lab.check(
        lab.router()
            .wait_for_status("bound after rebinding", Duration::from_secs(15), |s| dhcp4(s)["state"] == "bound"),
        "bound",
    );
    assert_eq!(dhcp4(&status)["addr"], cidr, "the same address, from the new server");
    assert!(lab.isp().dhcp4_log().contains("DHCPACK"), "{}", lab.isp().dhcp4_log());
}

#[test]
fn a_restart_with_the_isp_down_keeps_the_configuration() {
    let lab = lab_with_short_timers();
    let cidr = bound_address(&lab);
    let status = delegated(&lab);
    let prefix = dhcp6(&status)["prefixes"][0].as_str().unwrap_or_default().to_string();
    let lan0_v6 = format!("{}1/64", prefix.trim_end_matches("/56"));
    lab.isp().stop_dhcp4();
    lab.isp().stop_dhcp6();
    lab.router().stop_routerd();
    // As after a reboot: the kernel has forgotten everything.
    lab.check(lab.router().netns().ip(&["addr", "flush", "dev", UPLINK]), "flush");
    lab.check(lab.router().netns().ip(&["-6", "addr", "flush", "dev", "lan0", "scope", "global"]), "flush lan0");
    let (addrs, _) = uplink_config(&lab);
    assert!(!addrs.contains("inet "), "{addrs}");

    lab.check(lab.router().start_routerd(), "restart");
    // Applied by the DHCPv4 service as it starts (the ISP's server is still down, so from the saved lease).
    lab.check(
        integration::wait::until("the saved address on uplink0", Duration::from_secs(5), || {
            Ok(uplink_config(&lab).0.contains(&format!("inet {cidr}")).then_some(()))
        }),
        "applied before any server answered",
    );
    let (_, routes) = uplink_config(&lab);
    assert!(routes.contains(&format!("default via {ISP_V4} dev {UPLINK}")), "{routes}");
    let lan0 =
        || lab.check(lab.router().netns().ip(&["-6", "-o", "addr", "show", "dev", "lan0", "scope", "global"]), "lan0");
    lab.check(
        integration::wait::until("the saved prefix on lan0", Duration::from_secs(5), || {
            Ok(lan0().contains(&lan0_v6).then_some(()))
        }),
        "the saved DHCPv6 lease applied",
    );
    let status = lab.check(lab.router().status(), "status");
    assert_eq!(dhcp4(&status)["addr"], cidr);
    assert!(lab.router().routerd_log().contains("applying the saved DHCPv4 lease"), "{}", lab.router().routerd_log());

    // Still configured well past the time a server could have answered.
    std::thread::sleep(Duration::from_secs(3));
    let (addrs, _) = uplink_config(&lab);
    assert!(addrs.contains(&format!("inet {cidr}")), "{addrs}");
    assert!(lan0().contains(&lan0_v6), "{}", lan0());
    assert!(lab.router().routerd_log().contains("applying the saved DHCPv6 lease"), "{}", lab.router().routerd_log());

    // The ISP is back: INIT-REBOOT or DISCOVER gets the same address again, and kea the same prefix.
    lab.check(lab.isp().start_dhcp4(false), "the ISP's server is back");
    lab.check(lab.isp().start_dhcp6(), "the ISP's DHCPv6 server is back");
    let status = lab.check(
        lab.router().wait_for_status("bound after the ISP came back", Duration::from_secs(40), |s| {
            dhcp4(s)["state"] == "bound"
        }),
        "bound",
    );
    assert_eq!(dhcp4(&status)["addr"], cidr);
}

#[test]
fn uplink_gets_an_ipv6_address_and_a_prefix_for_the_lans() {
    let lab = lab_with_short_timers();
    let status = delegated(&lab);
    let prefix = dhcp6(&status)["prefixes"][0].as_str().unwrap_or_default().to_string();
    assert!(prefix.starts_with("2001:db8:1") && prefix.ends_with("/56"), "{prefix}");
    let address = dhcp6(&status)["addr"].as_str().unwrap_or_default().to_string();
    assert!(address.starts_with("2001:db8:0:1::1"), "{status}");
    assert_eq!(dhcp6(&status)["dns_servers"], serde_json::json!([ISP_V6.to_string()]));
    assert_eq!(status["uplink"]["ipv6_unavailable"], false);

    // lan0 gets subnet 0 of the prefix with ::1; the rest of the prefix is unreachable, not sent back upstream.
    let network = prefix.trim_end_matches("/56").trim_end_matches("::");
    let lan0_address = format!("{network}::1/64");
    let router = lab.router().netns();
    let lan0 = lab.check(router.ip(&["-6", "-o", "addr", "show", "dev", "lan0", "scope", "global"]), "lan0");
    assert!(lan0.contains(&lan0_address), "{lan0_address} on lan0: {lan0}");
    let routes = lab.check(router.ip(&["-6", "route", "show"]), "routes");
    assert!(routes.contains(&format!("unreachable {prefix}")), "{routes}");
    let uplink = lab.check(router.ip(&["-6", "-o", "addr", "show", "dev", UPLINK, "scope", "global"]), "uplink0");
    assert!(uplink.contains(&format!("{address}/128")), "{uplink}");

    // The ISP routes the prefix to the router, and the router reaches the internet host over IPv6.
    let isp_routes = lab.check(lab.isp().ipv6_routes(), "ISP routes");
    assert!(isp_routes.contains(&format!("{prefix} via fe80::")), "{isp_routes}");
    let body = lab.check(
        integration::wait::until("IPv6 to the internet host", Duration::from_secs(10), || {
            Ok(clients::curl(router, &format!("http://[{INTERNET_HOST_V6}]/")).ok())
        }),
        "curl -6",
    );
    assert_eq!(body.trim(), format!("client={address}"));

    // router7's files: the DUID (DUID-LL of the uplink MAC) and the lease with Go's IPNet prefixes.
    let duid = std::fs::read(lab.router().perm().join("dhcp6/duid")).expect("dhcp6/duid");
    assert_eq!(duid, [0, 3, 0, 1, 2, 0, 0, 0, 0, 1]);
    let lease: Value = serde_json::from_str(
        &std::fs::read_to_string(lab.router().perm().join("dhcp6/wire/lease.json")).expect("lease.json"),
    )
    .expect("JSON");
    assert_eq!(lease["prefixes"][0]["IP"], prefix.trim_end_matches("/56"));
    assert_eq!(lease["prefixes"][0]["Mask"], "/////////wAAAAAAAAAAAA==", "a /56 as Go's net.IPMask");

    // Renew at T1 (10 s) with the same server.
    lab.check(
        integration::wait::until("a DHCPv6 renewal", Duration::from_secs(20), || {
            Ok(lab.router().routerd_log().contains("DHCPv6 T1 reached").then_some(()))
        }),
        "renew",
    );
    lab.check(
        lab.router().wait_for_status("bound after renewing", Duration::from_secs(10), |s| dhcp6(s)["state"] == "bound"),
        "renewed",
    );
}

#[test]
fn an_isp_without_prefix_delegation_gives_a_v4_only_router_that_says_so() {
    let lab = Lab::start(LabOptions {
        isp: IspOptions { dhcpv6: Dhcpv6Server::DnsmasqWithoutPrefixDelegation, timers: Timers::Short },
        ..LabOptions::default()
    })
    .expect("the lab starts");
    bound_address(&lab);
    let status = lab.check(
        lab.router()
            .wait_for_status("IPv6 reported unavailable", LEASE_TIMEOUT, |s| s["uplink"]["ipv6_unavailable"] == true),
        "status",
    );
    let reason = status["uplink"]["ipv6_unavailable_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("no prefix"), "{reason}");
    let lan0 =
        lab.check(lab.router().netns().ip(&["-6", "-o", "addr", "show", "dev", "lan0", "scope", "global"]), "lan0");
    assert!(lan0.trim().is_empty(), "no prefix, no global address on lan0: {lan0}");
    let table = lab.check(lab.router().rtrctl(&["status"]), "rtrctl status");
    assert!(table.stdout.to_lowercase().contains("ipv6"), "{}", table.stdout);
}

#[test]
fn with_duplicate_address_detection_on_the_uplink_still_comes_up() {
    let lab = Lab::start(LabOptions {
        dad: true,
        isp: IspOptions { timers: Timers::Short, ..IspOptions::default() },
        ..LabOptions::default()
    })
    .expect("the lab starts with DAD on");
    bound_address(&lab);
    let status = delegated(&lab);
    assert_eq!(status["services"].as_array().map(|s| s.iter().all(|s| s["restarts"] == 0)), Some(true), "{status}");
}

#[test]
fn interfaces_json_renames_by_mac_and_applies_addresses_mtu_and_routes() {
    let lab = Lab::start(LabOptions { start_routerd: false, lan_devices: 1, ..LabOptions::default() })
        .expect("the lab starts");
    let router = lab.router().netns();
    // A NIC that the kernel named eth9; interfaces.json calls it lan1 by its MAC.
    lab.check(
        router.ip(&["link", "add", "eth9", "address", "02:00:00:00:09:09", "type", "veth", "peer", "name", "eth9peer"]),
        "a second NIC",
    );
    let interfaces = serde_json::json!({
        "interfaces": [
            { "name": "uplink0", "hardware_addr": UPLINK_MAC },
            {
                "name": "lan0",
                "hardware_addr": LAN_BRIDGE_MAC,
                "addr": "192.0.2.1/24",
                "extra_addrs": ["192.0.2.254/24"],
                "mtu": 1400,
                "extra_routes": [{ "destination": "203.0.113.128/25", "gateway": "192.0.2.99" }]
            },
            { "name": "lan1", "hardware_addr": "02:00:00:00:09:09", "addr": "198.51.100.254/32" },
            { "name": "lan5", "hardware_addr": "02:00:00:00:05:05", "addr": "192.0.2.5/32" }
        ]
    });
    std::fs::write(lab.router().perm().join("interfaces.json"), interfaces.to_string()).expect("interfaces.json");
    lab.check(lab.router().start_routerd(), "routerd");

    let lan1 = lab.check(router.ip(&["-o", "addr", "show", "dev", "lan1"]), "lan1 exists");
    assert!(lan1.contains("198.51.100.254/32"), "{lan1}");
    let lan0 = lab.check(router.ip(&["-o", "addr", "show", "dev", "lan0"]), "lan0");
    assert!(lan0.contains("192.0.2.1/24") && lan0.contains("192.0.2.254/24"), "{lan0}");
    let link = lab.check(router.ip(&["link", "show", "dev", "lan0"]), "lan0 link");
    assert!(link.contains("mtu 1400") && link.contains("state UP"), "{link}");
    let routes = lab.check(router.ip(&["route", "show"]), "routes");
    assert!(routes.contains("203.0.113.128/25 via 192.0.2.99 dev lan0"), "{routes}");
    // The missing NIC is reported, and routerd serves anyway.
    assert!(lab.router().routerd_log().contains("interface lan5"), "{}", lab.router().routerd_log());
    assert!(lab.check(lab.router().status(), "status")["hostname"] == "router");
}

#[test]
fn rtrctl_releases_the_leases_and_renews_them() {
    let lab = lab_with_short_timers();
    let cidr = bound_address(&lab);
    let status = delegated(&lab);
    let prefix = dhcp6(&status)["prefixes"][0].as_str().unwrap_or_default().to_string();

    let released = lab.check(lab.router().rtrctl(&["-o", "json", "uplink", "release"]), "rtrctl uplink release");
    assert!(released.success, "{}", released.combined());
    let doc: Value = serde_json::from_str(&released.stdout).expect("JSON");
    let outcomes: Vec<(&str, &str)> = doc["clients"]
        .as_array()
        .map(|clients| {
            clients.iter().map(|c| (c["client"].as_str().unwrap_or(""), c["outcome"].as_str().unwrap_or(""))).collect()
        })
        .unwrap_or_default();
    assert_eq!(outcomes, [("dhcp4", "released"), ("dhcp6", "released")], "{doc}");
    assert!(doc["clients"][1]["lease"].as_str().is_some_and(|l| l.contains(&prefix)), "{doc}");
    assert!(released.stdout.contains(&format!("dhcp4: released {cidr}")), "{}", released.stdout);
    assert!(
        released.stdout.contains("dhcp6: released address") && released.stdout.contains(&prefix),
        "{}",
        released.stdout
    );
    // The ISP heard it, the addresses are gone, and the files too (a restart must not bring them back).
    lab.check(
        integration::wait::until("DHCPRELEASE at the ISP", Duration::from_secs(5), || {
            Ok(lab.isp().dhcp4_log().contains("DHCPRELEASE").then_some(()))
        }),
        "release",
    );
    let (addrs, routes) = uplink_config(&lab);
    assert!(!addrs.contains("inet "), "{addrs}");
    assert!(!routes.contains("default"), "{routes}");
    let lan0 =
        lab.check(lab.router().netns().ip(&["-6", "-o", "addr", "show", "dev", "lan0", "scope", "global"]), "lan0");
    assert!(lan0.trim().is_empty(), "{lan0}");
    assert!(!lab.router().perm().join("dhcp4/wire/ack").exists());
    assert!(!lab.router().perm().join("dhcp6/wire/lease.json").exists());
    let status = lab.check(lab.router().status(), "status");
    assert!(dhcp4(&status).is_null() && dhcp6(&status).is_null(), "{status}");

    let json = lab.check(lab.router().rtrctl(&["-o", "json", "uplink", "renew", "--ipv4"]), "rtrctl uplink renew");
    let doc: Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(doc["results"].as_array().map(Vec::len), Some(1), "{doc}");
    assert_eq!(doc["clients"][0]["client"], "dhcp4", "{doc}");
    assert_eq!(doc["clients"][0]["outcome"], "renewing", "{doc}");
    let status = lab.check(
        lab.router().wait_for_status("bound after renew", LEASE_TIMEOUT, |s| dhcp4(s)["state"] == "bound"),
        "renewed",
    );
    assert!(dhcp6(&status).is_null(), "only IPv4 was renewed: {status}");
    lab.check(lab.router().rtrctl(&["uplink", "renew", "--ipv6"]), "renew IPv6");
    delegated(&lab);
}

#[test]
fn a_new_prefix_replaces_the_old_one_cleanly() {
    let lab = lab_with_short_timers();
    let status = delegated(&lab);
    let old = dhcp6(&status)["prefixes"][0].as_str().unwrap_or_default().to_string();
    assert!(old.starts_with("2001:db8:100:"), "{old}");
    lab.check(lab.isp().renumber_dhcp6("2001:db8:200::"), "the ISP renumbers");
    let status = lab.check(
        lab.router().wait_for_status("a prefix from the new pool", Duration::from_secs(40), |s| {
            dhcp6(s)["prefixes"][0].as_str().is_some_and(|p| p.starts_with("2001:db8:200:"))
        }),
        "renumbered",
    );
    let new = dhcp6(&status)["prefixes"][0].as_str().unwrap_or_default().to_string();
    let router = lab.router().netns();
    let lan0 = lab.check(router.ip(&["-6", "-o", "addr", "show", "dev", "lan0", "scope", "global"]), "lan0");
    assert!(lan0.contains(&format!("{}1/64", new.trim_end_matches("/56"))), "{lan0}");
    assert!(!lan0.contains(old.trim_end_matches("::/56")), "the old /64 is gone: {lan0}");
    let routes = lab.check(router.ip(&["-6", "route", "show"]), "routes");
    assert!(
        routes.contains(&format!("unreachable {new}")) && !routes.contains(&format!("unreachable {old}")),
        "{routes}"
    );
}

#[test]
fn the_clock_is_checked_against_the_ntp_servers_the_isp_gives_over_dhcpv4_and_dhcpv6() {
    let lab = Lab::start(LabOptions::default()).expect("the lab starts");
    // dnsmasq gives option 42 and kea option 31, both naming the ISP, where chronyd answers.
    let status = lab.check(
        lab.router().wait_for_status("the clock checked", LEASE_TIMEOUT, |s| {
            s["clock"]["state"] == "synchronized"
                && s["clock"]["servers"].as_array().is_some_and(|servers| servers.len() == 2)
        }),
        "clock",
    );
    let clock = &status["clock"];
    let servers: Vec<&str> = clock["servers"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    assert_eq!(servers, [ISP_V4.to_string(), ISP_V6.to_string()], "{clock}");
    assert!(servers.contains(&clock["server"].as_str().unwrap_or_default()), "{clock}");
    // Not the appliance: routerd measures, the host keeps its clock (chronyd serves the host's own time).
    assert_eq!(clock["sets_system_clock"], false);
    assert!(clock["offset_seconds"].as_f64().is_some_and(|offset| offset.abs() < 5.0), "{clock}");
    let diag = lab.check(lab.router().rtrctl(&["diag"]), "rtrctl diag");
    let line = diag.stdout.lines().find(|l| l.contains("clock (NTP)")).unwrap_or_default().to_string();
    assert!(line.contains('✔') && line.contains("agrees with"), "{}", diag.stdout);
    // The DHCPv6 lease keeps its NTP server on disk (routerd's addition to router7's file).
    let saved = std::fs::read_to_string(lab.router().perm().join("dhcp6/wire/lease.json")).expect("lease.json");
    let saved: Value = serde_json::from_str(&saved).expect("JSON");
    assert_eq!(saved["ntp"], serde_json::json!([ISP_V6.to_string()]), "{saved}");
}
