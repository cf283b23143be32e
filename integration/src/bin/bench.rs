//! `bench`: routerd's LAN services against the programs a user would otherwise run, in the same lab, one after
//! the other on the same machine: DHCPv4 exchanges per second (perfdhcp, which acts as a relay) against
//! routerd, kea-dhcp4 (memfile) and dnsmasq; cached DNS queries per second (dnsperf) against routerd, unbound
//! and dnsmasq as forwarders; and each server's memory. Prints a table with the ratios. Not a test: it asserts
//! nothing about speed.

use std::{fs, path::Path, process::ExitCode, time::Duration};

use integration::{
    Lab, LabError, LabOptions,
    addresses::*,
    command,
    programs::{DNSMASQ, Program},
    router::LAN,
    sockets::{self, Protocol},
    tracker::Tracker,
    wait,
};

const PERFDHCP: Program = Program { name: "perfdhcp", package: "kea-admin" };
const KEA_DHCP4: Program = Program { name: "kea-dhcp4", package: "kea-dhcp4-server" };
const DNSPERF: Program = Program { name: "dnsperf", package: "dnsperf" };
const UNBOUND: Program = integration::programs::UNBOUND;
const SECONDS: &str = "10";

struct Measurement {
    server: &'static str,
    rate: f64,
    rss_kib: u64,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), LabError> {
    match std::env::args().nth(1).as_deref() {
        Some("nat") => return nat(),
        Some("update") => return update_gap(),
        Some("system-update") => return system_update_gap(),
        Some("lan") | None => {}
        Some(other) => {
            return Err(LabError::unexpected(
                "bench",
                format!("unknown benchmark {other:?}: use lan, nat, update or system-update"),
            ));
        }
    }
    integration::programs::require(&[PERFDHCP, KEA_DHCP4, DNSPERF, UNBOUND, DNSMASQ])?;
    let lab = Lab::start(LabOptions { lan_devices: 1, start_routerd: false, ..LabOptions::default() })?;
    let client = lab.lan(1);
    client.set_static_ipv4()?;
    let work = lab.work_dir().join("bench");
    fs::create_dir_all(&work).map_err(|e| LabError::unexpected("creating the bench directory", e.to_string()))?;
    let tracker = lab.tracker();

    println!("DHCPv4: perfdhcp from lan1 (as a relay), {SECONDS} s per server, 90 clients, pool of 100 …");
    let mut dhcp = Vec::new();
    let pid = lab.router().start_routerd()?;
    wait_for_port(&tracker, pid, Protocol::Udp, 67)?;
    // The uplink lease too, so DNS can forward later.
    lab.router()
        .wait_for_status("an uplink lease", Duration::from_secs(20), |s| s["uplink"]["dhcp4"]["state"] == "bound")?;
    dhcp.push(Measurement { server: "routerd", rate: perfdhcp(&lab)?, rss_kib: rss(pid) });
    let dns_routerd = {
        let queries = query_file(&work)?;
        let rate = dnsperf(&lab, &queries)?;
        Measurement { server: "routerd", rate, rss_kib: rss(pid) }
    };
    lab.router().stop_routerd();

    let kea = start_kea_dhcp4(&lab, &work)?;
    dhcp.push(Measurement { server: "kea-dhcp4 (memfile)", rate: perfdhcp(&lab)?, rss_kib: rss(kea) });
    tracker.stop(kea);
    let dnsmasq = start(&lab, "dnsmasq (DHCP)", DNSMASQ, &dnsmasq_dhcp_args(&work), &work, Protocol::Udp, 67)?;
    dhcp.push(Measurement { server: "dnsmasq", rate: perfdhcp(&lab)?, rss_kib: rss(dnsmasq) });
    tracker.stop(dnsmasq);

    println!("DNS: dnsperf from lan1, {SECONDS} s per server, names the forwarder has cached …");
    let queries = query_file(&work)?;
    let mut dns = vec![dns_routerd];
    let unbound = start_unbound(&lab, &work)?;
    dns.push(Measurement { server: "unbound (forwarder)", rate: dnsperf(&lab, &queries)?, rss_kib: rss(unbound) });
    tracker.stop(unbound);
    let args = vec![
        "--keep-in-foreground".to_string(),
        "--conf-file=/dev/null".to_string(),
        format!("--listen-address={ROUTER_LAN_V4}"),
        "--bind-interfaces".to_string(),
        "--no-resolv".to_string(),
        format!("--server={ISP_V4}"),
        "--cache-size=10000".to_string(),
        "--user=root".to_string(),
        "--log-facility=/dev/null".to_string(),
    ];
    let dnsmasq = start(&lab, "dnsmasq (DNS)", DNSMASQ, &args, &work, Protocol::Udp, 53)?;
    dns.push(Measurement { server: "dnsmasq (forwarder)", rate: dnsperf(&lab, &queries)?, rss_kib: rss(dnsmasq) });
    tracker.stop(dnsmasq);

    report("DHCPv4 4-way exchanges per second (leases written to disk by each server's default)", &dhcp);
    report("DNS queries per second (cached)", &dns);
    Ok(())
}

fn report(title: &str, measurements: &[Measurement]) {
    println!("\n{title}:");
    let base = measurements.first().map(|m| m.rate).unwrap_or(0.0);
    for m in measurements {
        let ratio = if m.rate > 0.0 { base / m.rate } else { 0.0 };
        println!("  {:<22} {:>10.0}/s   RSS {:>7} KiB   routerd/this = {ratio:.2}", m.server, m.rate, m.rss_kib);
    }
}

fn wait_for_port(tracker: &Tracker, pid: u32, protocol: Protocol, port: u16) -> Result<(), LabError> {
    let _ = tracker;
    wait::until(&format!("port {port}"), Duration::from_secs(10), || {
        Ok(sockets::is_bound(pid, protocol, port).then_some(()))
    })
}

fn start(
    lab: &Lab,
    name: &str,
    program: Program,
    args: &[String],
    work: &Path,
    protocol: Protocol,
    port: u16,
) -> Result<u32, LabError> {
    let binary = program.locate().ok_or_else(|| LabError::MissingPrograms(vec![(program.name, program.package)]))?;
    let log = work.join(format!("{}.log", name.replace([' ', '(', ')'], "")));
    let pid = lab.tracker().spawn(name, lab.router().netns(), &binary, args, &[], &log)?;
    wait_for_port(&lab.tracker(), pid, protocol, port)?;
    Ok(pid)
}

fn dnsmasq_dhcp_args(work: &Path) -> Vec<String> {
    vec![
        "--keep-in-foreground".to_string(),
        "--conf-file=/dev/null".to_string(),
        "--port=0".to_string(),
        format!("--interface={LAN}"),
        "--bind-interfaces".to_string(),
        "--dhcp-authoritative".to_string(),
        "--no-ping".to_string(),
        "--user=root".to_string(),
        "--log-facility=/dev/null".to_string(),
        "--dhcp-lease-max=10000".to_string(),
        format!("--dhcp-leasefile={}", work.join("dnsmasq.leases").display()),
        "--dhcp-range=192.0.2.100,192.0.2.199,255.255.255.0,20m".to_string(),
    ]
}

fn start_kea_dhcp4(lab: &Lab, work: &Path) -> Result<u32, LabError> {
    let config = serde_json::json!({
        "Dhcp4": {
            "interfaces-config": { "interfaces": [LAN] },
            "lease-database": { "type": "memfile", "persist": true, "name": work.join("kea-leases4.csv"), "lfc-interval": 0 },
            "valid-lifetime": 1200,
            "subnet4": [{ "id": 1, "subnet": "192.0.2.0/24", "pools": [{ "pool": "192.0.2.100 - 192.0.2.199" }],
                          "option-data": [{ "name": "routers", "data": "192.0.2.1" }] }],
            // Per-lease INFO logging costs kea about a fifth of its rate.
            "loggers": [{ "name": "kea-dhcp4", "output_options": [{ "output": "stdout" }], "severity": "WARN" }]
        }
    });
    let path = work.join("kea-dhcp4.json");
    fs::write(&path, config.to_string())
        .map_err(|e| LabError::unexpected("writing kea's configuration", e.to_string()))?;
    let binary =
        KEA_DHCP4.locate().ok_or_else(|| LabError::MissingPrograms(vec![(KEA_DHCP4.name, KEA_DHCP4.package)]))?;
    let env = [("KEA_PIDFILE_DIR", work.display().to_string()), ("KEA_LOCKFILE_DIR", work.display().to_string())];
    let args = vec!["-c".to_string(), path.display().to_string()];
    let pid =
        lab.tracker().spawn("kea-dhcp4", lab.router().netns(), &binary, &args, &env, &work.join("kea-dhcp4.log"))?;
    wait_for_port(&lab.tracker(), pid, Protocol::Udp, 67)?;
    Ok(pid)
}

fn start_unbound(lab: &Lab, work: &Path) -> Result<u32, LabError> {
    let config = format!(
        "server:\n  interface: {ROUTER_LAN_V4}\n  port: 53\n  do-daemonize: no\n  chroot: \"\"\n  username: \"\"\n  \
         directory: \"{dir}\"\n  pidfile: \"{dir}/unbound.pid\"\n  use-syslog: no\n  verbosity: 0\n  \
         module-config: \"iterator\"\n  access-control: 0.0.0.0/0 allow\n  do-not-query-localhost: no\n  \
         num-threads: 2\n\nforward-zone:\n  name: \".\"\n  forward-addr: {ISP_V4}\n\nremote-control:\n  control-enable: no\n",
        dir = work.display()
    );
    let path = work.join("unbound-lan.conf");
    fs::write(&path, config).map_err(|e| LabError::unexpected("writing unbound's configuration", e.to_string()))?;
    let args = vec!["-d".to_string(), "-c".to_string(), path.display().to_string()];
    start(lab, "unbound (DNS)", UNBOUND, &args, work, Protocol::Udp, 53)
}

fn query_file(work: &Path) -> Result<std::path::PathBuf, LabError> {
    let path = work.join("queries.txt");
    let lines: Vec<String> = INTERNET_NAMES.iter().flat_map(|n| [format!("{n} A"), format!("{n} AAAA")]).collect();
    fs::write(&path, lines.join("\n") + "\n")
        .map_err(|e| LabError::unexpected("writing the query file", e.to_string()))?;
    Ok(path)
}

fn perfdhcp(lab: &Lab) -> Result<f64, LabError> {
    let binary = PERFDHCP.locate().ok_or_else(|| LabError::MissingPrograms(vec![(PERFDHCP.name, PERFDHCP.package)]))?;
    let server = ROUTER_LAN_V4.to_string();
    let args = ["-4", "-l", "eth0", "-r", "20000", "-R", "90", "-p", SECONDS, &server];
    let output = command::run_unchecked(lab.lan(1).netns().command(binary).args(args))?;
    parse_after(&output.stdout, "Rate: ").ok_or_else(|| LabError::unexpected("perfdhcp", output.combined()))
}

fn dnsperf(lab: &Lab, queries: &Path) -> Result<f64, LabError> {
    let binary = DNSPERF.locate().ok_or_else(|| LabError::MissingPrograms(vec![(DNSPERF.name, DNSPERF.package)]))?;
    let server = ROUTER_LAN_V4.to_string();
    let queries = queries.display().to_string();
    // Warm the cache, then measure.
    let warm = ["-s", &server, "-d", &queries, "-n", "1"];
    command::run_unchecked(lab.lan(1).netns().command(&binary).args(warm))?;
    let args = ["-s", &server, "-d", &queries, "-l", SECONDS, "-c", "4", "-q", "200"];
    let output = command::run_unchecked(lab.lan(1).netns().command(binary).args(args))?;
    parse_after(&output.stdout, "Queries per second:").ok_or_else(|| LabError::unexpected("dnsperf", output.combined()))
}

fn parse_after(text: &str, label: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// Resident memory of a process, in KiB.
fn rss(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().trim_end_matches(" kB").trim().to_string()))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

const IPERF3: Program = Program { name: "iperf3", package: "iperf3" };

/// router7's ruleset, for comparison: masquerade out of the uplink, everything accepted, MSS clamping.
const ROUTER7_RULESET: &str = "table ip router7_nat {
    chain postrouting { type nat hook postrouting priority srcnat; policy accept;
        oifname \"uplink0\" masquerade
    }
}
table inet router7_filter {
    chain forward { type filter hook forward priority filter; policy accept;
        oifname \"uplink0\" tcp flags syn / syn,rst tcp option maxseg size set rt mtu
    }
}
";

/// TCP throughput LAN → internet host through the router namespace: routerd's ruleset, then router7's.
fn nat() -> Result<(), LabError> {
    integration::programs::require(&[IPERF3])?;
    let lab = Lab::start(LabOptions { lan_devices: 1, ..LabOptions::default() })?;
    lab.router()
        .wait_for_status("an uplink lease", Duration::from_secs(20), |s| s["uplink"]["dhcp4"]["state"] == "bound")?;
    lab.lan(1).set_static_ipv4()?;
    let work = lab.work_dir().join("bench");
    fs::create_dir_all(&work).map_err(|e| LabError::unexpected("creating the bench directory", e.to_string()))?;
    let iperf3 = IPERF3.locate().ok_or_else(|| LabError::MissingPrograms(vec![(IPERF3.name, IPERF3.package)]))?;
    let args = ["-s", "-B", &INTERNET_HOST_V4.to_string()].map(String::from).to_vec();
    let server =
        lab.tracker().spawn("iperf3 server", lab.isp().netns(), &iperf3, &args, &[], &work.join("iperf3.log"))?;
    wait_for_port(&lab.tracker(), server, Protocol::Tcp, 5201)?;

    let router = lab.router().netns();
    let flowtable = router
        .run(
            "nft",
            &["add table inet probe; add flowtable inet probe f { hook ingress priority 0; devices = { uplink0 }; }"],
        )
        .is_ok();
    let _ = router.run("nft", &["delete", "table", "inet", "probe"]);
    println!(
        "NAT throughput: iperf3 from lan1 to {INTERNET_HOST_V4} for {SECONDS} s (flowtables: {})",
        if flowtable { "supported, but routerd does not use them yet" } else { "not supported by this kernel" }
    );
    let measure = |label: &'static str| -> Result<Measurement, LabError> {
        let args = ["-c", &INTERNET_HOST_V4.to_string(), "-t", SECONDS, "-J"].map(String::from);
        let output = command::run_unchecked(lab.lan(1).netns().command(&iperf3).args(args))?;
        let json: serde_json::Value = serde_json::from_str(&output.stdout)
            .map_err(|e| LabError::unexpected("iperf3 -J", format!("{e}: {}", output.combined())))?;
        let bits = json["end"]["sum_received"]["bits_per_second"].as_f64().unwrap_or(0.0);
        Ok(Measurement { server: label, rate: bits / 1e6, rss_kib: 0 })
    };
    let mut results = vec![measure("routerd's ruleset")?];
    // The same path with router7's ruleset instead (routerd's tables removed for the run).
    lab.router().stop_routerd();
    router.run("nft", &["delete", "table", "inet", "routerd"])?;
    router.run("nft", &["delete", "table", "ip", "routerd_nat"])?;
    let path = work.join("router7.nft");
    fs::write(&path, ROUTER7_RULESET).map_err(|e| LabError::unexpected("writing router7's ruleset", e.to_string()))?;
    router.run("nft", &["-f", &path.to_string_lossy()])?;
    results.push(measure("router7's ruleset")?);
    println!("\nTCP throughput in Mbit/s:");
    let base = results[0].rate;
    for m in &results {
        let ratio = if m.rate > 0.0 { base / m.rate } else { 0.0 };
        println!("  {:<22} {:>10.0} Mbit/s   routerd/this = {ratio:.2}", m.server, m.rate);
    }
    Ok(())
}

/// What a LAN device sees while routerd updates itself: forwarded packets lost and the longest DNS and DHCP
/// gaps, from `assets/update_gap.py` probing every 10 ms (DHCP every 50 ms) while `rtrctl update` runs.
fn update_gap() -> Result<(), LabError> {
    let lab = Lab::start(LabOptions { lan_devices: 1, ..LabOptions::default() })?;
    let device = lab.lan(1);
    device.set_static_ipv4()?;
    lab.router().wait_for_uplink_address(Duration::from_secs(30))?;
    lab.router().wait_for_delegated_prefix(Duration::from_secs(30))?;
    wait::until("a healthy router", Duration::from_secs(60), || {
        Ok(lab.router().rtrctl(&["diag", "--health"])?.success.then_some(()))
    })?;
    let work = bench_dir(&lab)?;
    let binary = work.join("routerd-next");
    let (size, _) = lab.router().another_build(&binary, "next build")?;
    // Warm the DNS cache, then probe for 12 s with the update in the middle.
    device.dig(&ROUTER_LAN_V4.to_string(), "www.example.org", "A")?;
    let probe = GapProbe::start(&lab, &work, 12)?;
    std::thread::sleep(Duration::from_secs(2));
    let started = std::time::Instant::now();
    let update = lab.router().rtrctl(&["update", "--binary", &binary.to_string_lossy(), "--no-backup"])?;
    let took = started.elapsed();
    let results = probe.results()?;
    if !update.success {
        return Err(LabError::unexpected("rtrctl update", update.combined()));
    }
    println!("{}", update.stdout.trim());
    println!();
    println!("rtrctl update took {:.1} s (upload of {} MiB, activation, confirmation)", took.as_secs_f64(), size >> 20);
    let dns_gap = print_gaps(&results);
    println!();
    println!(
        "goal: no forwarded packet lost ({}), DNS gap under 1 s ({}); router7 loses about 13 s (its own figure); \
         ratio {:.0}x",
        if results["forwarded"]["lost"] == 0 { "met" } else { "missed" },
        if dns_gap < 1000.0 { "met" } else { "missed" },
        13_000.0 / dns_gap.max(1.0)
    );
    Ok(())
}

/// The same for a whole system update on the appliance in qemu (software emulation here, so every figure is
/// far slower than on an apu2): the probe runs from before `rtrctl update --image` until 10 s after it reported
/// the confirmed update.
fn system_update_gap() -> Result<(), LabError> {
    let lab = Lab::start(LabOptions { appliance: true, lan_devices: 1, ..LabOptions::default() })?;
    let device = lab.lan(1);
    let identity = lab.router().identity();
    println!("building the appliance's image and booting it in qemu (software emulation) …");
    let vm = lab.boot_appliance()?;
    device.set_static_ipv4()?;
    wait::until("a healthy appliance", Duration::from_secs(400), || {
        Ok(device.rtrctl_with_identity(&identity, &["diag", "--health"])?.success.then_some(()))
    })?;
    let work = bench_dir(&lab)?;
    println!("building the update bundle …");
    let bundle = work.join("second.rbundle");
    integration::appliance::build_bundle(&bundle, "second", None, None)?;
    let size = fs::metadata(&bundle).map_err(|e| LabError::unexpected("the bundle", e.to_string()))?.len();
    device.dig(&ROUTER_LAN_V4.to_string(), "www.example.org", "A")?;
    let probe = GapProbe::start(&lab, &work, 1800)?;
    std::thread::sleep(Duration::from_secs(5));
    println!("updating (upload, slot write, kexec, boot, confirmation) …");
    let started = std::time::Instant::now();
    let update = device.rtrctl_with_identity(
        &identity,
        &["update", "--image", &bundle.to_string_lossy(), "--no-backup", "--force", "--confirm-window", "300"],
    )?;
    let took = started.elapsed();
    std::thread::sleep(Duration::from_secs(10));
    let results = probe.results()?;
    if !update.success {
        return Err(LabError::unexpected(
            "rtrctl update --image",
            format!("{}\n── console:\n{}", update.combined(), vm.console_text()),
        ));
    }
    println!("{}", update.stdout.trim());
    println!();
    println!(
        "rtrctl update --image took {:.0} s (upload of {} MiB, slot write, kexec, boot, confirmation)",
        took.as_secs_f64(),
        size >> 20
    );
    let dns_gap = print_gaps(&results);
    println!();
    println!(
        "router7 loses about 13 s on an apu2 (its own figure); here the longest DNS gap is {:.1} s under software \
         emulation (qemu without KVM), ratio {:.2}x",
        dns_gap / 1000.0,
        13_000.0 / dns_gap.max(1.0)
    );
    Ok(())
}

fn bench_dir(lab: &Lab) -> Result<std::path::PathBuf, LabError> {
    let work = lab.work_dir().join("bench");
    fs::create_dir_all(&work).map_err(|e| LabError::unexpected("creating the bench directory", e.to_string()))?;
    Ok(work)
}

/// `assets/update_gap.py` running on lan1 for at most `seconds`.
struct GapProbe {
    child: std::process::Child,
}

impl GapProbe {
    fn start(lab: &Lab, work: &Path, seconds: u64) -> Result<GapProbe, LabError> {
        let script = work.join("update_gap.py");
        fs::write(&script, include_str!("../assets/update_gap.py"))
            .map_err(|e| LabError::unexpected("writing the probe", e.to_string()))?;
        let child = lab
            .lan(1)
            .netns()
            .command("/usr/bin/python3")
            .args([
                script.display().to_string(),
                ROUTER_LAN_V4.to_string(),
                INTERNET_HOST_V4.to_string(),
                "eth0".into(),
                seconds.to_string(),
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| LabError::unexpected("starting the probe", e.to_string()))?;
        Ok(GapProbe { child })
    }

    /// Stops the probe (SIGTERM, if it still runs) and returns what it measured.
    fn results(self) -> Result<serde_json::Value, LabError> {
        integration::tracker::send_signal(self.child.id(), libc::SIGTERM);
        let output =
            self.child.wait_with_output().map_err(|e| LabError::unexpected("waiting for the probe", e.to_string()))?;
        let text = String::from_utf8_lossy(&output.stdout);
        serde_json::from_str(text.trim())
            .map_err(|e| LabError::unexpected("the probe's results", format!("{e}: {text}")))
    }
}

/// Prints the probe's figures; returns the longest DNS gap in ms.
fn print_gaps(results: &serde_json::Value) -> f64 {
    let forwarded = &results["forwarded"];
    println!(
        "forwarded (ICMP to {INTERNET_HOST_V4}, every 10 ms): {} sent, {} lost, longest gap {} ms",
        forwarded["sent"], forwarded["lost"], forwarded["longest_gap_ms"]
    );
    for (what, key) in [("DNS (cached name, every 10 ms)", "dns"), ("DHCP (DISCOVER → OFFER, every 50 ms)", "dhcp")] {
        let r = &results[key];
        println!("{what}: {} sent, {} answered, longest gap {} ms", r["sent"], r["answered"], r["longest_gap_ms"]);
    }
    results["dns"]["longest_gap_ms"].as_f64().unwrap_or(f64::MAX)
}
