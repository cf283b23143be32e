//! `bench`: routerd against the programs a user would otherwise run, in the same lab, one after the other on the
//! same machine, printing ratios (not a test: it asserts nothing about speed). `lan` ([`lan`]): DHCPv4 and DNS
//! at a home's scale and far beyond; `nat`: forwarding throughput; `update` and `system-update`: what a LAN
//! device notices while routerd updates itself.

mod lan;
mod measure;

use std::{fs, path::Path, process::ExitCode, time::Duration};

use integration::{Lab, LabError, LabOptions, addresses::*, command, programs::Program, wait};

const SECONDS: &str = "10";

struct Measurement {
    server: &'static str,
    rate: f64,
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
    let parts: Vec<String> = std::env::args().skip(2).collect();
    match std::env::args().nth(1).as_deref() {
        Some("nat") => nat(),
        Some("update") => update_gap(),
        Some("system-update") => system_update_gap(),
        Some("lan") | None => lan::run(&parts),
        Some(other) => Err(LabError::unexpected(
            "bench",
            format!("unknown benchmark {other:?}: use lan, nat, update or system-update"),
        )),
    }
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
    lan::wait_for_port(server, integration::sockets::Protocol::Tcp, 5201)?;

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
        Ok(Measurement { server: label, rate: bits / 1e6 })
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
        fs::write(&script, include_str!("../../assets/update_gap.py"))
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
