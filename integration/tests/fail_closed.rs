//! The router is never open without its firewall: the lockdown ruleset is in the kernel before forwarding is
//! turned on and before anything listens, and when the kernel refuses every ruleset, forwarding stays off and
//! routerd listens on loopback only.

use std::{
    io::Write,
    process::{Child, Stdio},
    time::Duration,
};

use integration::{Lab, LabOptions, addresses::*, clients, netns::Netns, wait};

const TIMEOUT: Duration = Duration::from_secs(20);

fn forwarding(netns: &Netns) -> (String, String) {
    let read = |key: &str| netns.run("cat", &[&format!("/proc/sys/{key}")]).unwrap_or_default().trim().to_string();
    (read("net/ipv4/ip_forward"), read("net/ipv6/conf/all/forwarding"))
}

/// Which line of the log first contains `text`.
fn line_of(log: &str, text: &str) -> Option<usize> {
    log.lines().position(|line| line.contains(text))
}

#[test]
fn the_lockdown_ruleset_is_in_the_kernel_before_forwarding_and_before_any_listener() {
    let lab = Lab::start(LabOptions { start_routerd: false, ..LabOptions::default() }).expect("the lab starts");
    let router = lab.router().netns();
    assert_eq!(forwarding(router), ("0".into(), "0".into()), "a new namespace does not forward");
    // Watches for the moment forwarding goes on and takes the ruleset right then (bash builtins only, so the
    // loop notices within microseconds).
    let snapshot = lab.work_dir().join("ruleset-at-forwarding.txt");
    let script = format!(
        "while read -r v < /proc/sys/net/ipv4/ip_forward && [ \"$v\" = 0 ]; do :; done; \
         nft list table inet routerd > {0} 2>&1; echo \"exit=$?\" >> {0}",
        snapshot.display()
    );
    let watcher = lab.check(
        lab.tracker().spawn(
            "forwarding-watcher",
            router,
            std::path::Path::new("/bin/bash"),
            &["-c".to_string(), script],
            &[],
            &lab.work_dir().join("watcher.log"),
        ),
        "the watcher",
    );
    lab.check(lab.router().start_routerd(), "routerd");
    lab.check(
        wait::until("the watcher's snapshot", TIMEOUT, || {
            Ok(std::fs::read_to_string(&snapshot).ok().filter(|t| t.contains("exit=")))
        }),
        "snapshot",
    );
    lab.tracker().stop(watcher);
    let taken = std::fs::read_to_string(&snapshot).unwrap_or_default();
    assert!(taken.contains("exit=0") && taken.contains("chain forward"), "no ruleset when forwarding went on: {taken}");
    assert!(taken.contains("policy drop"), "{taken}");

    let log = lab.check(
        wait::until("the full ruleset", TIMEOUT, || {
            let log = lab.router().routerd_log();
            Ok(log.contains("firewall and NAT loaded").then_some(log))
        }),
        "the firewall service",
    );
    let at = |text: &str| line_of(&log, text).unwrap_or_else(|| lab.fail(&format!("{text:?} is not in the log")));
    let order =
        ["firewall: lockdown ruleset loaded", "forwarding enabled", "management API bound to", "serving gRPC"].map(at);
    assert!(order.windows(2).all(|pair| pair[0] < pair[1]), "start-up order {order:?} in:\n{log}");
    assert!(at("firewall and NAT loaded") > order[0], "{log}");
    assert_eq!(forwarding(router), ("1".into(), "1".into()));
    // The full ruleset replaced the lockdown: LAN devices reach the internet.
    lab.check(lab.lan(1).set_static_ipv4(), "lan1 address");
    let seen = lab.check(
        wait::until("the internet from lan1", TIMEOUT, || {
            Ok(clients::curl(lab.lan(1).netns(), &format!("http://{INTERNET_HOST_V4}/")).ok())
        }),
        "curl",
    );
    assert!(seen.starts_with("client="), "{seen}");
}

/// Another program owns a table named `inet routerd` (nftables' owner flag: only the netlink socket that
/// created it may change or delete it), so the kernel refuses every ruleset routerd loads.
struct OwnedTable(Child);

impl OwnedTable {
    fn hold(netns: &Netns) -> OwnedTable {
        let mut child = netns
            .command("nft")
            .arg("-i")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nft -i");
        if let Some(stdin) = child.stdin.as_mut() {
            stdin.write_all(b"add table inet routerd { flags owner; }\n").expect("writing to nft");
            stdin.flush().expect("flushing");
        }
        OwnedTable(child)
    }

    fn release(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for OwnedTable {
    fn drop(&mut self) {
        self.release();
    }
}

#[test]
fn a_ruleset_the_kernel_refuses_leaves_forwarding_off_and_the_api_on_loopback() {
    let lab = Lab::start(LabOptions { start_routerd: false, ..LabOptions::default() }).expect("the lab starts");
    let router = lab.router().netns();
    // As if a previous run had left forwarding on.
    lab.check(router.sysctl(&[("net/ipv4/ip_forward", "1"), ("net/ipv6/conf/all/forwarding", "1")]), "sysctl");
    let mut owned = OwnedTable::hold(router);
    lab.check(
        wait::until("the owned table", TIMEOUT, || {
            Ok(router.run("nft", &["list", "table", "inet", "routerd"]).ok().filter(|t| t.contains("owner")))
        }),
        "nft",
    );
    lab.check(lab.router().start_routerd(), "routerd");
    let uplink = lab.check(lab.router().wait_for_uplink_address(TIMEOUT), "the uplink still gets its lease");

    let log = lab.router().routerd_log();
    assert!(log.contains("forwarding stays off and the API and metrics listen on loopback only"), "{log}");
    assert_eq!(forwarding(router), ("0".into(), "0".into()), "forwarding was left on");

    // Nothing but loopback listens on the API's and the metrics' ports.
    let listening = lab.check(router.run("ss", &["-Hltn"]), "ss");
    let ours: Vec<&str> = listening.lines().filter(|l| l.contains(":9339") || l.contains(":8066")).collect();
    assert!(ours.len() >= 2, "{listening}");
    assert!(ours.iter().all(|l| l.contains("127.0.0.1:") || l.contains("[::1]:")), "{listening}");

    // The failure is a service problem: `rtrctl status` (over loopback) and `rtrctl diag` name it.
    let status = lab.check(
        lab.router().wait_for_status("the firewall's failure", TIMEOUT, |s| {
            s["services"].as_array().into_iter().flatten().any(|s| {
                s["name"] == "firewall" && s["state"] != "running" && s["message"].to_string().contains("refused")
            })
        }),
        "status",
    );
    assert!(status["services"].to_string().contains("Operation not permitted"), "{status}");
    let diag = lab.check(lab.router().rtrctl(&["diag"]), "rtrctl diag");
    assert!(!diag.success, "diag must fail: {}", diag.combined());
    assert!(diag.stdout.lines().any(|l| l.contains('✘') && l.contains("firewall")), "{}", diag.stdout);

    // From the uplink: neither the API nor the metrics nor any LAN host is reachable.
    lab.check(lab.lan(1).set_static_ipv4(), "lan1 address");
    lab.check(lab.lan(1).serve_http(80), "HTTP on lan1");
    lab.check(lab.isp().netns().ip(&["route", "add", "192.0.2.0/24", "via", &uplink]), "a route to the LAN");
    let lan_host = clients::curl(lab.isp().netns(), &format!("http://{}/", lan_device_static_v4(1)));
    assert!(lan_host.is_err(), "a LAN host answered the ISP: {lan_host:?}");
    for target in [
        format!("{uplink}:9339"),
        format!("{uplink}:8066"),
        format!("{ROUTER_LAN_V4}:9339"),
        format!("{ROUTER_LAN_V4}:8066"),
    ] {
        let probe = clients::curl(lab.isp().netns(), &format!("http://{target}/"));
        assert!(probe.is_err(), "{target} answered the ISP: {probe:?}");
    }
    // Nor from the LAN (the API is on loopback until the next start).
    let metrics = clients::curl(lab.lan(1).netns(), &format!("http://{ROUTER_LAN_V4}:8066/metrics"));
    assert!(metrics.is_err(), "{metrics:?}");

    // Once the kernel takes a ruleset (the other program is gone), the firewall loads and forwarding follows.
    owned.release();
    lab.check(
        wait::until("forwarding after the firewall loaded", Duration::from_secs(90), || {
            Ok((forwarding(router) == ("1".into(), "1".into())).then_some(()))
        }),
        "forwarding",
    );
    let log = lab.router().routerd_log();
    let loaded = line_of(&log, "firewall and NAT loaded").unwrap_or_else(|| lab.fail("the firewall never loaded"));
    let enabled = line_of(&log, "forwarding enabled: the firewall is in place").unwrap_or_else(|| lab.fail(&log));
    assert!(loaded < enabled, "{log}");
}
