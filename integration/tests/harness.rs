//! The lab's own tests: the topology comes up isolated and goes away, every ISP peer serves a real client, LAN
//! devices run real clients, routerd is reachable, and nothing is left behind after a panic, a SIGKILLed owner,
//! or Ctrl-C.

use std::{
    io::{BufRead, BufReader, Read},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use integration::{
    DhcpClientKind, Dhcpv6Server, IspOptions, Lab, LabOptions, Timers,
    addresses::*,
    clients, lab,
    netns::Netns,
    reference,
    router::UPLINK,
    tracker::{self, Tracker},
};

const LEASE_TIMEOUT: Duration = Duration::from_secs(20);

/// A lab whose uplink is left to the test's own clients (routerd does not start).
fn lab_without_routerd(isp: IspOptions) -> Lab {
    Lab::start(LabOptions { isp, start_routerd: false, ..LabOptions::default() }).expect("the lab starts")
}

/// A DHCP client on the router's uplink, talking to the ISP.
fn client_on_uplink(lab: &Lab, kind: DhcpClientKind) -> integration::DhcpClient {
    let dir = lab.work_dir().join("router-clients");
    lab.check(integration::DhcpClient::start(&lab.tracker(), lab.router().netns(), UPLINK, kind, &dir), "a client")
}

fn links(netns: &Netns) -> Vec<String> {
    let out = netns.ip(&["-o", "link", "show"]).expect("ip link");
    let mut names: Vec<String> = out
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or_default().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn topology_is_isolated_uses_documentation_ranges_and_is_removed_on_drop() {
    let lab = lab_without_routerd(IspOptions::default());
    let names = lab.namespaces();
    assert_eq!(names.len(), 4, "{names:?}");

    assert_eq!(links(lab.isp().netns()), ["isp0", "lo"]);
    assert_eq!(links(lab.router().netns()), ["lan0", "lan0p1", "lan0p2", "lo", "uplink0"]);
    for device in lab.lans() {
        assert_eq!(links(device.netns()), ["eth0", "lo"]);
    }
    let bridge_ports = lab.check(lab.router().netns().ip(&["-o", "link", "show", "master", "lan0"]), "bridge ports");
    assert_eq!(bridge_ports.lines().count(), 2, "{bridge_ports}");

    for name in &names {
        let netns = Netns::existing(name);
        // No link to the host means no default route anywhere before a DHCP client sets one.
        let routes = lab.check(netns.ip(&["route", "show", "default"]), "routes");
        assert!(routes.trim().is_empty(), "{name} has a default route: {routes}");
        let addrs = lab.check(netns.ip(&["-o", "addr", "show"]), "addresses");
        for addr in addrs.lines().filter_map(|l| l.split_whitespace().nth(3)) {
            let ok = addr.starts_with("127.")
                || addr == "::1/128"
                || addr.starts_with("fe80:")
                || addr.starts_with("192.0.2.")
                || addr.starts_with("198.51.100.")
                || addr.starts_with("203.0.113.")
                || addr.starts_with("2001:db8:");
            assert!(ok, "{name} has {addr}, outside the documentation ranges");
        }
    }
    // Bridge netfilter is off in the router namespace by default.
    let bridge_nf = lab.router().netns().run("cat", &["/proc/sys/net/bridge/bridge-nf-call-iptables"]);
    if let Ok(value) = bridge_nf {
        assert_eq!(value.trim(), "0");
    }

    let pids: Vec<u32> = lab.tracker().processes().iter().map(|p| p.pid).collect();
    assert_eq!(pids.len(), 6, "dnsmasq, kea, radvd, unbound, chronyd, http host");
    drop(lab);
    for name in &names {
        assert!(!Netns::existing(name).exists(), "{name} is still there");
    }
    for pid in pids {
        assert!(!tracker::is_alive(pid), "process {pid} is still running");
    }
}

#[test]
fn isp_serves_dhcpv4_dns_and_the_internet_host_to_the_router() {
    let lab = lab_without_routerd(IspOptions { timers: Timers::Short, ..IspOptions::default() });
    let router = lab.router().netns();

    let udhcpc = client_on_uplink(&lab, DhcpClientKind::Udhcpc { hostname: None });
    let lease = lab.check(udhcpc.wait_bound(LEASE_TIMEOUT), "a DHCPv4 lease from the ISP");
    let addr = lease.get("ip").unwrap_or_default().to_string();
    assert!(addr.starts_with("198.51.100.1"), "{lease:?}");
    assert_eq!(lease.get("router"), Some("198.51.100.1"), "{lease:?}");
    assert_eq!(lease.get("dns"), Some("198.51.100.1"), "{lease:?}");
    assert_eq!(lease.get("lease"), Some("120"), "short timers: {lease:?}");
    assert!(lab.isp().dhcp4_leases().contains(&addr), "dnsmasq records the lease");

    // The udhcpc script configured the address and the default route, as a device would.
    let body = lab.check(clients::curl(router, &format!("http://{INTERNET_HOST_V4}/")), "curl the internet host");
    assert_eq!(body.trim(), format!("client={addr}"));

    let answer = lab.check(clients::dig(router, &ISP_V4.to_string(), "www.example.com", "A"), "dig");
    assert_eq!(answer, [INTERNET_HOST_V4.to_string()]);
    let answer = lab.check(clients::dig(router, &ISP_V4.to_string(), "example.org", "AAAA"), "dig AAAA");
    assert_eq!(answer, [INTERNET_HOST_V6.to_string()]);
    let unknown = lab.check(clients::dig_full(router, &ISP_V4.to_string(), "nowhere.example", "A"), "dig");
    assert!(unknown.stdout.contains("status: NXDOMAIN"), "the resolver must not recurse: {}", unknown.stdout);
}

#[test]
fn isp_delegates_a_prefix_routes_it_to_the_router_and_advertises_the_link() {
    let lab = lab_without_routerd(IspOptions { timers: Timers::Short, ..IspOptions::default() });
    let router = lab.router().netns();

    let advert = lab.check(clients::rdisc6(router, UPLINK), "an RA from radvd");
    assert!(advert.managed && advert.other_config, "{}", advert.raw);
    assert_eq!(advert.prefixes.len(), 1, "{}", advert.raw);
    assert_eq!(advert.prefixes[0].prefix, ISP_LINK_V6_PREFIX);
    assert!(advert.prefixes[0].on_link && !advert.prefixes[0].autonomous, "{}", advert.raw);
    assert_eq!(advert.rdnss, [ISP_V6.to_string()]);

    let dhclient = client_on_uplink(&lab, DhcpClientKind::Dhclient6 { prefix_delegation: true });
    let delegated = lab.check(
        dhclient.wait_for("a delegated prefix", LEASE_TIMEOUT, |e| e.get("new_ip6_prefix").is_some()),
        "prefix delegation from kea",
    );
    let prefix = delegated.get("new_ip6_prefix").unwrap_or_default().to_string();
    assert!(prefix.starts_with("2001:db8:1") && prefix.ends_with("/56"), "{delegated:?}");
    assert_eq!(delegated.get("new_renew"), Some("10"), "short timers: {delegated:?}");
    let address = lab.check(
        dhclient.wait_for("an address", LEASE_TIMEOUT, |e| e.get("new_ip6_address").is_some()),
        "an IA_NA address from kea",
    );
    let ia_na = address.get("new_ip6_address").unwrap_or_default().to_string();
    assert!(ia_na.starts_with("2001:db8:0:1::1"), "{address:?}");

    // Like a real ISP, the ISP now routes the prefix to the router's link-local address.
    let router_link_local = advert_source_of_router(&lab);
    let route = lab.check(
        integration::wait::until("the ISP's route to the delegated prefix", Duration::from_secs(5), || {
            let routes = lab.isp().ipv6_routes()?;
            Ok(routes.lines().find(|l| l.starts_with(&prefix)).map(str::to_string))
        }),
        "route",
    );
    assert!(route.contains(&format!("via {router_link_local}")) && route.contains("dev isp0"), "{route}");

    // The RA gave the router namespace a default route; the internet host sees the IA_NA address.
    let url = format!("http://[{INTERNET_HOST_V6}]/");
    let body = lab.check(
        integration::wait::until("IPv6 reachability of the internet host", Duration::from_secs(10), || {
            Ok(clients::curl(router, &url).ok())
        }),
        "curl over IPv6",
    );
    assert_eq!(body.trim(), format!("client={ia_na}"));
}

fn advert_source_of_router(lab: &Lab) -> String {
    let out = lab.check(lab.router().netns().ip(&["-6", "-o", "addr", "show", "dev", UPLINK, "scope", "link"]), "ll");
    let cidr = out.split_whitespace().skip_while(|w| *w != "inet6").nth(1).unwrap_or_default();
    cidr.split('/').next().unwrap_or_default().to_string()
}

#[test]
fn isp_without_prefix_delegation_hands_out_addresses_only() {
    let lab =
        lab_without_routerd(IspOptions { dhcpv6: Dhcpv6Server::DnsmasqWithoutPrefixDelegation, timers: Timers::Short });
    let dhclient = client_on_uplink(&lab, DhcpClientKind::Dhclient6 { prefix_delegation: true });
    let bound = lab.check(dhclient.wait_bound(LEASE_TIMEOUT), "a DHCPv6 address from dnsmasq");
    assert!(bound.get("new_ip6_address").is_some_and(|a| a.starts_with("2001:db8:0:1::1")), "{bound:?}");
    assert_eq!(bound.get("new_max_life"), Some("120"), "dnsmasq's shortest lease: {bound:?}");
    // Asked for a prefix, dnsmasq leaves IA_PD out of its answer.
    assert!(dhclient.events().iter().all(|e| e.get("new_ip6_prefix").is_none()), "{:?}", dhclient.events());
    assert!(lab.isp().route_hook_log().is_empty(), "no kea, no delegation");
}

#[test]
fn lan_devices_are_real_clients_that_send_their_hostnames() {
    let lab = lab_without_routerd(IspOptions::default());
    // dnsmasq and radvd stand in for routerd's LAN services, to check the devices on their own.
    let (_, leases) = lab.check(reference::dnsmasq_dhcp4(&lab), "dnsmasq on lan0");
    lab.check(reference::radvd_slaac(&lab, "2001:db8:42::/64"), "radvd on lan0");

    let udhcpc = lab.check(
        lab.lan(1).start_dhcp_client(DhcpClientKind::Udhcpc { hostname: Some("kitchen-tablet".into()) }),
        "udhcpc on lan1",
    );
    let dhclient = lab.check(
        lab.lan(2).start_dhcp_client(DhcpClientKind::Dhclient4 { hostname: Some("study-laptop".into()) }),
        "dhclient on lan2",
    );
    let first = lab.check(udhcpc.wait_bound(LEASE_TIMEOUT), "udhcpc lease");
    let second = lab.check(dhclient.wait_bound(LEASE_TIMEOUT), "dhclient lease");
    let first_ip = first.get("ip").unwrap_or_default().to_string();
    let second_ip = second.get("new_ip_address").unwrap_or_default().to_string();
    assert!(first_ip.starts_with("192.0.2.1") && second_ip.starts_with("192.0.2.1"), "{first:?} {second:?}");
    assert_ne!(first_ip, second_ip);
    let lease_file = std::fs::read_to_string(&leases).unwrap_or_default();
    assert!(lease_file.contains(&format!("{first_ip} kitchen-tablet")), "{lease_file}");
    assert!(lease_file.contains(&format!("{second_ip} study-laptop")), "{lease_file}");
    // Each script configured its device's address.
    let lan1_addrs = lab.check(lab.lan(1).netns().ip(&["-4", "-o", "addr", "show", "dev", "eth0"]), "addr");
    assert!(lan1_addrs.contains(&format!("{first_ip}/24")), "{lan1_addrs}");

    // The kernel's SLAAC and rdisc6 see the LAN's RA.
    let advert = lab.check(lab.lan(1).rdisc6(), "rdisc6 on lan1");
    assert!(advert.prefixes.iter().any(|p| p.prefix == "2001:db8:42::/64" && p.autonomous), "{}", advert.raw);
    let slaac = lab.check(
        integration::wait::until("a SLAAC address on lan2", Duration::from_secs(10), || {
            let addrs = lab.lan(2).global_ipv6_addresses()?;
            Ok(addrs.into_iter().find(|a| a.starts_with("2001:db8:42:")))
        }),
        "SLAAC",
    );
    assert!(slaac.starts_with("2001:db8:42::"), "{slaac}");
}

#[test]
fn routerd_runs_in_the_router_namespace_and_survives_a_restart_with_its_identities() {
    let lab = Lab::start(LabOptions::default()).expect("the lab starts");
    let device = lab.lan(1);
    lab.check(device.set_static_ipv4(), "static address");
    let code = lab.check(lab.router().pairing_code(), "pairing code");
    let paired = lab.check(device.rtrctl(&["pair", "--code", &code, "--name", "test-laptop"]), "pair");
    assert!(paired.success, "{}", paired.combined());

    let before = lab.check(device.rtrctl(&["-o", "json", "status"]), "status");
    assert!(before.success, "{}", before.combined());
    let status: serde_json::Value = serde_json::from_str(&before.stdout).expect("status is JSON");
    assert_eq!(status["hostname"], "router");

    lab.router().stop_routerd();
    assert!(!lab.router().routerd_running());
    let refused = lab.check(device.rtrctl(&["status"]), "status while stopped");
    assert!(!refused.success, "routerd is stopped: {}", refused.combined());
    lab.check(lab.router().start_routerd(), "restarting routerd");
    let after = lab.check(device.rtrctl(&["status"]), "status after the restart");
    assert!(after.success, "{}", after.combined());
    assert!(lab.router().routerd_log().contains("serving gRPC"), "the log is collected");
}

#[test]
fn a_panicking_test_leaves_no_namespace_or_process_behind() {
    /// What the lab had created before the panic: namespaces, PIDs, its directory.
    type Created = (Vec<String>, Vec<u32>, std::path::PathBuf);
    let seen: Arc<Mutex<Created>> = Arc::default();
    let record = Arc::clone(&seen);
    let outcome = std::thread::spawn(move || {
        let lab = Lab::start(LabOptions::default()).expect("the lab starts");
        let client = lab
            .lan(1)
            .start_dhcp_client(DhcpClientKind::Udhcpc { hostname: None })
            .expect("a client that never gets a lease (no DHCP server on the LAN)");
        let pids = lab.tracker().processes().iter().map(|p| p.pid).collect();
        *record.lock().expect("lock") = (lab.namespaces(), pids, lab.work_dir().to_path_buf());
        assert!(tracker::is_alive(client.pid));
        panic!("a test failing half-way");
    })
    .join();
    assert!(outcome.is_err(), "the thread panicked");
    let (namespaces, pids, work_dir) = seen.lock().expect("lock").clone();
    assert!(!work_dir.as_os_str().is_empty() && !work_dir.exists(), "{} is still there", work_dir.display());
    assert_eq!(namespaces.len(), 4);
    assert_eq!(pids.len(), 8, "6 ISP peers, routerd, udhcpc");
    for name in namespaces {
        assert!(!Netns::existing(&name).exists(), "{name} is still there");
    }
    for pid in pids {
        assert!(!tracker::is_alive(pid), "process {pid} is still running");
    }
}

#[test]
fn namespaces_of_a_killed_owner_are_swept_by_the_next_lab() {
    // A PID that surely is gone: a child that has exited and was reaped.
    let mut gone = Command::new("true").spawn().expect("true");
    let dead_pid = gone.id();
    gone.wait().expect("wait");
    let name = format!("rdl{dead_pid}x1-isp");
    let tracker = Tracker::default();
    let netns = tracker.create_namespace(&name, false).expect("namespace");
    let mut sleeper = netns.command("sleep").arg("600").spawn().expect("a process inside");

    let swept = lab::sweep_abandoned();
    assert!(swept.contains(&name), "{swept:?}");
    assert!(!netns.exists());
    let status = sleeper.wait().expect("reaped");
    assert!(!status.success(), "the abandoned process was killed: {status}");
}

#[test]
fn dad_on_variant_waits_for_addresses_before_the_peers_bind() {
    let lab = Lab::start(LabOptions { dad: true, start_routerd: false, lan_devices: 1, ..LabOptions::default() })
        .expect("the lab starts with DAD on");
    let accept_dad =
        lab.check(lab.isp().netns().run("cat", &["/proc/sys/net/ipv6/conf/isp0/accept_dad"]), "accept_dad");
    assert_eq!(accept_dad.trim(), "1");
    // The router's own link-local address goes through DAD too; then radvd answers its solicitation.
    let router = lab.router().netns();
    lab.check(
        integration::wait::until("uplink0's link-local address", Duration::from_secs(10), || {
            let out = router.ip(&["-6", "addr", "show", "dev", UPLINK, "scope", "link", "-tentative"])?;
            Ok(out.contains("inet6").then_some(()))
        }),
        "DAD on uplink0",
    );
    let advert = lab.check(clients::rdisc6(router, UPLINK), "rdisc6");
    assert_eq!(advert.rdnss, [ISP_V6.to_string()]);
}

#[test]
fn lab_up_in_the_foreground_is_removed_by_ctrl_c() {
    let name = format!("t{}", std::process::id());
    let mut lab_process = Command::new(env!("CARGO_BIN_EXE_lab"))
        .args(["up", "--foreground", "--lans", "1", "--name", &name])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("lab up");
    let stdout = lab_process.stdout.take().expect("stdout");
    let mut transcript = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read");
        transcript.push_str(&line);
        transcript.push('\n');
        if line.contains("Ctrl-C") {
            break;
        }
    }
    assert!(transcript.contains("Press Ctrl-C"), "lab up did not come up:\n{transcript}");
    let inventory: tracker::Inventory = serde_json::from_str(
        &std::fs::read_to_string(format!("{}/{name}/inventory.json", lab::PERSISTENT_DIR)).expect("inventory"),
    )
    .expect("inventory JSON");
    assert_eq!(inventory.namespaces.len(), 3);
    assert_eq!(inventory.processes.len(), 7, "{inventory:?}");

    // SAFETY: signalling our own child.
    unsafe { libc::kill(lab_process.id() as libc::pid_t, libc::SIGINT) };
    let status = lab_process.wait().expect("lab exits");
    assert_eq!(status.code(), Some(130), "{status}");
    for ns in &inventory.namespaces {
        assert!(!Netns::existing(ns).exists(), "{ns} is still there");
    }
    for process in &inventory.processes {
        assert!(!tracker::is_alive(process.pid), "{} ({}) is still running", process.name, process.pid);
    }
    assert!(!std::path::Path::new(lab::PERSISTENT_DIR).join(&name).exists());
}

#[test]
fn lab_up_and_down_from_the_command_line() {
    let name = format!("u{}", std::process::id());
    let up = Command::new(env!("CARGO_BIN_EXE_lab")).args(["up", "--lans", "1", "--name", &name]).output().expect("up");
    let up_text = String::from_utf8_lossy(&up.stdout);
    assert!(up.status.success(), "{up_text}{}", String::from_utf8_lossy(&up.stderr));
    assert!(up_text.contains("rtrctl") && up_text.contains(&format!("lab down --name {name}")), "{up_text}");
    let listed = Command::new(env!("CARGO_BIN_EXE_lab")).arg("list").output().expect("list");
    assert!(String::from_utf8_lossy(&listed.stdout).lines().any(|l| l == name));

    // The command `lab up` printed works: rtrctl from the LAN device with the issued identity.
    let identity = format!("{}/{name}/router/perm/../lab-identity.pem", lab::PERSISTENT_DIR);
    let status = Netns::existing(&format!("rdlab-{name}-lan1"))
        .run(
            integration::programs::RTRCTL.locate().expect("rtrctl"),
            &["--router", "192.0.2.1:9339", "--identity", &identity, "status"],
        )
        .expect("rtrctl status from lan1");
    assert!(status.contains("routerd"), "{status}");

    let down = Command::new(env!("CARGO_BIN_EXE_lab")).args(["down", "--name", &name]).output().expect("down");
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    assert!(!integration::netns::list().iter().any(|ns| ns.starts_with(&format!("rdlab-{name}-"))));
    let again = Command::new(env!("CARGO_BIN_EXE_lab")).args(["down", "--name", &name]).output().expect("down");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("no lab named"));
}

#[test]
fn ctrl_c_during_lab_demo_removes_everything() {
    let mut demo = Command::new(env!("CARGO_BIN_EXE_lab"))
        .args(["demo", "--lans", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("lab demo");
    // The reader stays open until the end: closing the pipe early would make the demo's next line fail.
    let mut stdout = BufReader::new(demo.stdout.take().expect("stdout"));
    let mut transcript = String::new();
    let mut namespaces = Vec::new();
    let mut line = String::new();
    while stdout.read_line(&mut line).expect("read") > 0 {
        transcript.push_str(&line);
        if let Some(list) = line.trim_end().split_once("namespaces ").map(|(_, list)| list.to_string()) {
            namespaces = list.split(", ").map(str::to_string).collect();
            // SAFETY: signalling our own child.
            unsafe { libc::kill(demo.id() as libc::pid_t, libc::SIGINT) };
            break;
        }
        line.clear();
    }
    assert_eq!(namespaces.len(), 4, "lab demo did not report its namespaces:\n{transcript}");
    stdout.read_to_string(&mut transcript).expect("read");
    let output = demo.wait_with_output().expect("lab exits");
    // Almost always interrupted mid-tour (130); a tour that finished first has cleaned up by itself (0).
    assert!(
        matches!(output.status.code(), Some(130) | Some(0)),
        "{}: {transcript}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    for ns in &namespaces {
        assert!(!Netns::existing(ns).exists(), "{ns} is still there");
    }
    let lab_name = namespaces[0].trim_end_matches("-isp").to_string();
    let temp_dirs: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .expect("temp dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("routerd-lab-{lab_name}-")))
        .collect();
    assert!(temp_dirs.is_empty(), "the demo's files are still there: {temp_dirs:?}");
}
