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
