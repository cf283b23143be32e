//! NAT, the firewall and port forwards with real traffic: LAN devices reach the internet host, port forwards
//! are reachable from the ISP side, and nothing unsolicited gets in.

use std::time::Duration;

use integration::{DhcpClientKind, IspOptions, Lab, LabOptions, Timers, addresses::*, clients};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(20);

fn uplink_address(lab: &Lab) -> String {
    lab.check(lab.router().wait_for_uplink_address(TIMEOUT), "uplink")
}

#[test]
fn lan_devices_reach_the_internet_through_nat_and_forwards_reach_them() {
    let lab = Lab::start(LabOptions {
        start_routerd: false,
        isp: IspOptions { timers: Timers::Short, ..IspOptions::default() },
        ..LabOptions::default()
    })
    .expect("the lab starts");
    // A forward to the HTTP server on lan1 (192.0.2.11, a fixed address), written before routerd starts.
    let forwards = serde_json::json!({ "forwardings": [
        { "proto": "tcp", "port": "8080", "dest_addr": lan_device_static_v4(1).to_string(), "dest_port": "80" }
    ]});
    std::fs::write(lab.router().perm().join("portforwardings.json"), forwards.to_string()).expect("forwards");
    lab.check(lab.router().start_routerd(), "routerd");
    let uplink = uplink_address(&lab);

    // IPv4: a DHCP client on lan2 reaches the internet host, which sees the router's uplink address.
    let client =
        lab.check(lab.lan(2).start_dhcp_client(DhcpClientKind::Udhcpc { hostname: Some("lan2".into()) }), "udhcpc");
    lab.check(client.wait_bound(TIMEOUT), "a LAN lease");
    let seen = lab.check(clients::curl(lab.lan(2).netns(), &format!("http://{INTERNET_HOST_V4}/")), "curl through NAT");
    assert_eq!(seen.trim(), format!("client={uplink}"));

    // IPv6: no NAT; the internet host sees the device's own SLAAC address.
    let prefix =
        lab.check(lab.router().wait_for_delegated_prefix(TIMEOUT), "prefix").trim_end_matches("::/56").to_string();
    let slaac = lab.check(
        integration::wait::until("a SLAAC address on lan2", TIMEOUT, || {
            Ok(lab.lan(2).global_ipv6_addresses()?.into_iter().find(|a| a.starts_with(&prefix)))
        }),
        "SLAAC",
    );
    let seen6 = lab.check(
        integration::wait::until("IPv6 to the internet host", TIMEOUT, || {
            Ok(clients::curl(lab.lan(2).netns(), &format!("http://[{INTERNET_HOST_V6}]/")).ok())
        }),
        "curl over IPv6",
    );
    assert_eq!(seen6.trim(), format!("client={slaac}"));

    // Counters survive a rebuild of the ruleset: the LAN → uplink rule keeps what it counted.
    let lan_to_uplink = |lab: &Lab| -> u64 {
        let json = lab
            .check(lab.router().netns().run("nft", &["-j", "list", "chain", "inet", "routerd", "forward"]), "nft -j");
        let json: Value = serde_json::from_str(&json).expect("nft JSON");
        json["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| item.get("rule"))
            .filter(|rule| {
                rule.to_string().contains("\"uplink0\"")
                    && rule.to_string().contains("\"lan0\"")
                    && !rule.to_string().contains("ct")
            })
            .find_map(|rule| rule["expr"].as_array()?.iter().find_map(|e| e["counter"]["packets"].as_u64()))
            .unwrap_or(0)
    };
    let before = lan_to_uplink(&lab);
    assert!(before > 0, "the LAN's traffic was counted");
    let rebuilt = lab.check(
        lab.router().rtrctl(&[
            "forwards",
            "add",
            "--port",
            "7070",
            "--dest-addr",
            &lan_device_static_v4(1).to_string(),
        ]),
        "a change that rebuilds the ruleset",
    );
    assert!(rebuilt.success, "{}", rebuilt.combined());
    assert!(lan_to_uplink(&lab) >= before, "counters were reset by the rebuild");

    // The forward: from the ISP side to the uplink address, to lan1's server, which sees the ISP's address.
    lab.check(lab.lan(1).set_static_ipv4(), "lan1 address");
    lab.check(lab.lan(1).serve_http(80), "HTTP on lan1");
    let forwarded = lab.check(clients::curl(lab.isp().netns(), &format!("http://{uplink}:8080/")), "the port forward");
    assert_eq!(forwarded.trim(), format!("client={ISP_V4}"));

    // Unsolicited inbound IPv4 to a LAN device is dropped too, even when the ISP routes the LAN's network to the
    // router (it would not normally: these addresses are behind NAT).
    lab.check(lab.isp().netns().ip(&["route", "add", "192.0.2.0/24", "via", &uplink]), "a route to the LAN");
    let direct = clients::curl(lab.isp().netns(), &format!("http://{}/", lan_device_static_v4(1)));
    assert!(direct.is_err(), "an unsolicited IPv4 connection got through: {direct:?}");

    // Unsolicited inbound IPv6 to a LAN device is dropped (no pinhole), and no routerd port answers on the uplink.
    lab.check(lab.lan(2).serve_http(8000), "HTTP on lan2");
    let inbound = clients::curl(lab.isp().netns(), &format!("http://[{slaac}]:8000/"));
    assert!(inbound.is_err(), "an unsolicited connection got through: {inbound:?}");
    for port in ["9339", "53"] {
        let probe = clients::curl(lab.isp().netns(), &format!("http://{uplink}:{port}/"));
        assert!(probe.is_err(), "port {port} answers on the uplink: {probe:?}");
    }
    let dns = lab.check(clients::dig_full(lab.isp().netns(), &uplink, "router.lan", "A"), "dig from the ISP");
    assert!(!dns.stdout.contains("ANSWER SECTION"), "{}", dns.stdout);
    // A foreign table is left alone when routerd (re)applies its own.
    let router = lab.router().netns();
    lab.check(router.run("nft", &["add", "table", "inet", "someone_else"]), "a foreign table");
    lab.router().stop_routerd();
    lab.check(lab.router().start_routerd(), "restart (re-applies the ruleset)");
    let tables = lab.check(router.run("nft", &["list", "tables"]), "nft list tables");
    assert!(tables.contains("someone_else") && tables.contains("routerd"), "{tables}");
    // Flowtable support is detected and reported (this kernel has none; the probe leaves no table behind).
    let status = lab.check(lab.router().status(), "status");
    let firewall = status["services"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == "firewall")
        .cloned()
        .unwrap_or_default();
    assert!(firewall["message"].as_str().is_some_and(|m| m.contains("flowtables")), "{firewall}");
    assert!(!tables.contains("routerd_probe"), "{tables}");
    let ruleset = lab.check(router.run("nft", &["list", "table", "inet", "routerd"]), "nft list");
    assert_eq!(ruleset.matches("chain input").count(), 1, "re-applying does not duplicate: {ruleset}");
}

#[test]
fn forwards_added_with_rtrctl_apply_at_once_persist_and_hairpin_from_the_lan() {
    let lab = Lab::start(LabOptions::default()).expect("the lab starts");
    let uplink = uplink_address(&lab);
    lab.check(lab.lan(1).set_static_ipv4(), "lan1 address");
    lab.check(lab.lan(1).serve_http(80), "HTTP on lan1");
    let lan1 = lan_device_static_v4(1).to_string();

    let added = lab.check(
        lab.router().rtrctl(&[
            "-o",
            "json",
            "forwards",
            "add",
            "--port",
            "9090",
            "--dest-addr",
            &lan1,
            "--dest-port",
            "80",
            "--description",
            "web",
        ]),
        "forwards add",
    );
    assert!(added.success, "{}", added.combined());
    let doc: Vec<Value> = serde_json::from_str(&added.stdout).expect("JSON");
    assert_eq!(doc[0]["id"], "tcp:9090");
    let seen = lab.check(clients::curl(lab.isp().netns(), &format!("http://{uplink}:9090/")), "the new forward");
    assert_eq!(seen.trim(), format!("client={ISP_V4}"));
    let file = std::fs::read_to_string(lab.router().perm().join("portforwardings.json")).expect("saved");
    assert!(file.contains("\"9090\"") && file.contains("\"web\""), "{file}");

    // Hairpin: a LAN device using the public address reaches the forward; lan1 sees the router as the client.
    lab.check(lab.lan(2).set_static_ipv4(), "lan2 address");
    let hairpin = lab.check(clients::curl(lab.lan(2).netns(), &format!("http://{uplink}:9090/")), "hairpin");
    assert_eq!(hairpin.trim(), format!("client={ROUTER_LAN_V4}"));

    // Bad input: refused with the reason, nothing changed.
    for (args, expected) in [
        (vec!["--port", "0", "--dest-addr", lan1.as_str()], "ports are 1 to 65535"),
        (vec!["--port", "7000", "--dest-addr", "198.51.100.9"], "not a device on a LAN"),
        (vec!["--port", "9090", "--dest-addr", lan1.as_str()], "already forwarded by tcp:9090"),
        (vec!["--port", "8000-8010", "--dest-addr", lan1.as_str(), "--dest-port", "80-81"], "different lengths"),
    ] {
        let mut full = vec!["forwards", "add"];
        full.extend(args.iter().copied());
        let refused = lab.check(lab.router().rtrctl(&full), "forwards add");
        assert!(!refused.success && refused.stderr.contains(expected), "{full:?}: {}", refused.combined());
    }
    assert_eq!(std::fs::read_to_string(lab.router().perm().join("portforwardings.json")).expect("file"), file);

    // Update: a new description, and a destination port that does not exist (then back).
    let updated =
        lab.check(lab.router().rtrctl(&["forwards", "update", "tcp:9090", "--description", "site"]), "update");
    assert!(updated.success && updated.stdout.contains("site"), "{}", updated.combined());
    let moved = lab.check(lab.router().rtrctl(&["forwards", "update", "tcp:9090", "--dest-port", "81"]), "update");
    assert!(moved.success, "{}", moved.combined());
    assert!(clients::curl(lab.isp().netns(), &format!("http://{uplink}:9090/")).is_err(), "nothing listens on :81");
    let refused =
        lab.check(lab.router().rtrctl(&["forwards", "update", "tcp:9090", "--dest-addr", "198.51.100.9"]), "update");
    assert!(!refused.success && refused.stderr.contains("not a device on a LAN"), "{}", refused.combined());
    lab.check(lab.router().rtrctl(&["forwards", "update", "tcp:9090", "--dest-port", "80"]), "update back");
    assert!(clients::curl(lab.isp().netns(), &format!("http://{uplink}:9090/")).is_ok());

    let removed = lab.check(lab.router().rtrctl(&["forwards", "rm", "tcp:9090"]), "forwards rm");
    assert!(removed.success, "{}", removed.combined());
    assert!(clients::curl(lab.isp().netns(), &format!("http://{uplink}:9090/")).is_err(), "removed at once");

    // A hand edit is picked up on reload; a broken one changes nothing.
    let edited = serde_json::json!({ "forwardings": [{ "proto": "tcp", "port": "9191", "dest_addr": lan1, "dest_port": "80" }] });
    std::fs::write(lab.router().perm().join("portforwardings.json"), edited.to_string()).expect("hand edit");
    let reloaded = lab.check(lab.router().rtrctl(&["forwards", "reload"]), "reload");
    assert!(reloaded.success && reloaded.stdout.contains("tcp:9191"), "{}", reloaded.combined());
    assert!(clients::curl(lab.isp().netns(), &format!("http://{uplink}:9191/")).is_ok());
    std::fs::write(
        lab.router().perm().join("portforwardings.json"),
        r#"{"forwardings":[{"proto":"tcp","port":"0080x"}]}"#,
    )
    .expect("broken edit");
    let refused = lab.check(lab.router().rtrctl(&["forwards", "reload"]), "reload");
    assert!(!refused.success && refused.stderr.contains("nothing changed"), "{}", refused.combined());
    assert!(
        clients::curl(lab.isp().netns(), &format!("http://{uplink}:9191/")).is_ok(),
        "the previous forward still works"
    );
}

#[test]
fn a_pinhole_lets_one_inbound_ipv6_service_through_and_mss_is_clamped() {
    let lab = Lab::start(LabOptions::default()).expect("the lab starts");
    let prefix =
        lab.check(lab.router().wait_for_delegated_prefix(TIMEOUT), "prefix").trim_end_matches("::/56").to_string();
    let device = lab.lan(2);
    let address = lab.check(
        integration::wait::until("a SLAAC address on lan2", TIMEOUT, || {
            Ok(device.global_ipv6_addresses()?.into_iter().find(|a| a.starts_with(&prefix)))
        }),
        "SLAAC",
    );
    lab.check(device.serve_http(8000), "HTTP :8000");
    lab.check(device.serve_http(8001), "HTTP :8001");

    // A pinhole for :8000 only, and a smaller MTU on the uplink to see MSS clamping; both read at start.
    let mut routerd: Value =
        serde_json::from_str(&std::fs::read_to_string(lab.router().perm().join("routerd.json")).expect("read"))
            .expect("JSON");
    routerd["ipv6_pinholes"] = serde_json::json!([{ "address": address, "proto": "tcp", "port": 8000 }]);
    std::fs::write(lab.router().perm().join("routerd.json"), routerd.to_string()).expect("write");
    let mut interfaces: Value =
        serde_json::from_str(&std::fs::read_to_string(lab.router().perm().join("interfaces.json")).expect("read"))
            .expect("JSON");
    interfaces["interfaces"][0]["mtu"] = serde_json::json!(1400);
    std::fs::write(lab.router().perm().join("interfaces.json"), interfaces.to_string()).expect("write");
    lab.router().stop_routerd();
    lab.check(lab.router().start_routerd(), "restart");
    uplink_address(&lab);

    let through =
        lab.check(clients::curl(lab.isp().netns(), &format!("http://[{address}]:8000/")), "through the pinhole");
    assert_eq!(through.trim(), format!("client={ISP_V6}"));
    assert!(clients::curl(lab.isp().netns(), &format!("http://[{address}]:8001/")).is_err(), "no pinhole for :8001");

    // A SYN from the LAN leaves the uplink with its MSS clamped to the route's MTU (1400 - 40 = 1360).
    let capture = lab.work_dir().join("syn.txt");
    let args: Vec<String> =
        ["-n", "-l", "-v", "-i", "uplink0", "-c", "1", "tcp[tcpflags] & tcp-syn != 0 and dst port 80"]
            .map(String::from)
            .to_vec();
    let tcpdump = integration::programs::Program { name: "tcpdump", package: "tcpdump" }
        .locate()
        .expect("tcpdump (Debian package tcpdump)");
    let pid =
        lab.check(lab.tracker().spawn("tcpdump", lab.router().netns(), &tcpdump, &args, &[], &capture), "tcpdump");
    lab.check(
        integration::wait::until("tcpdump to listen", Duration::from_secs(5), || {
            Ok(std::fs::read_to_string(&capture).unwrap_or_default().contains("listening on").then_some(()))
        }),
        "tcpdump",
    );
    lab.check(lab.lan(1).set_static_ipv4(), "lan1 address");
    lab.check(clients::curl(lab.lan(1).netns(), &format!("http://{INTERNET_HOST_V4}/")), "a connection from the LAN");
    let seen = lab.check(
        integration::wait::until("the SYN in the capture", Duration::from_secs(5), || {
            let text = std::fs::read_to_string(&capture).unwrap_or_default();
            Ok(text.contains("mss").then_some(text))
        }),
        "capture",
    );
    assert!(seen.contains("mss 1360"), "{seen}");
    lab.tracker().stop(pid);
}

#[test]
fn hairpin_works_even_where_bridge_netfilter_starts_on() {
    // The kernel's default in a new namespace: bridged LAN traffic would pass the IP hooks; routerd turns it off.
    let lab = Lab::start(LabOptions { bridge_netfilter: true, ..LabOptions::default() }).expect("the lab starts");
    let uplink = uplink_address(&lab);
    lab.check(lab.lan(1).set_static_ipv4(), "lan1 address");
    lab.check(lab.lan(1).serve_http(80), "HTTP on lan1");
    lab.check(lab.lan(2).set_static_ipv4(), "lan2 address");
    let seen = lab.check(
        clients::curl(lab.lan(2).netns(), &format!("http://{uplink}:{DEMO_FORWARD_PORT}/")),
        "hairpin through the lab's forward",
    );
    assert_eq!(seen.trim(), format!("client={ROUTER_LAN_V4}"));
    if std::path::Path::new("/proc/sys/net/bridge/bridge-nf-call-iptables").exists() {
        let value =
            lab.check(lab.router().netns().run("cat", &["/proc/sys/net/bridge/bridge-nf-call-iptables"]), "sysctl");
        assert_eq!(value.trim(), "0", "routerd turned it off");
    }
}
