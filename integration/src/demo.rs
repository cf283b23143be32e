//! `lab demo`: a scripted tour of what routerd can do so far, in a freshly built lab, checked step by step.
//! Each issue that adds a capability adds its step here and removes its line from [`NOT_BUILT_YET`].

use std::time::{Duration, Instant};

use crate::{
    addresses::*,
    command::Output,
    error::LabError,
    isp::Dhcpv6Server,
    lab::Lab,
    router::{API_PORT, LAB_IDENTITY_NAME},
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Passed(String),
    Failed(String),
    NotBuiltYet(&'static str),
}

#[derive(Clone, Debug)]
pub struct StepResult {
    pub name: &'static str,
    pub outcome: Outcome,
    pub elapsed: Duration,
}

/// Capabilities the tour cannot show yet, and the issue that brings each.
pub const NOT_BUILT_YET: &[(&str, &str)] = &[];

type Step = (&'static str, fn(&Lab) -> Result<String, String>);

const STEPS: &[Step] = &[
    ("ISP", isp_is_serving),
    ("routerd", routerd_is_serving),
    ("uplink DHCPv4", uplink_has_a_lease),
    ("uplink DHCPv6", uplink_has_a_prefix),
    ("pairing", lan_device_pairs),
    ("status over mTLS", status_from_the_lan),
    ("strangers refused", strangers_are_refused),
    ("revocation", revoked_identity_is_refused),
    ("LAN lease", lan_device_gets_a_lease),
    ("IPv6 on the LAN", lan_device_gets_ipv6),
    ("names (DNS)", lan_names_resolve),
    ("internet via NAT", lan_device_reaches_the_internet),
    ("port forward", port_forward_reaches_lan1),
    ("capture", capture_decodes),
    ("diagnostics", diagnostics_tree),
    ("ping from the router", ping_from_the_router),
    ("metrics", metrics_scrape),
    ("backup", backup_taken),
    ("safe update", update_performed),
];

/// The tour of the appliance (`lab demo --appliance`): the disk image in qemu instead of routerd in a namespace.
const APPLIANCE_STEPS: &[Step] = &[
    ("disk image", appliance::image_built_and_booted),
    ("boot", appliance::routerd_serves),
    ("LAN lease", appliance::lan_lease),
    ("status over mTLS", appliance::status),
    ("clock", appliance::clock),
    ("names (DNS)", appliance::names),
    ("internet via NAT", appliance::internet),
    ("diagnostics", appliance::diagnostics),
    ("reboot", appliance::reboot),
];

/// Runs every step in order, reporting each to `progress` as it finishes.
pub fn tour(lab: &Lab, mut progress: impl FnMut(&StepResult)) -> Vec<StepResult> {
    tour_until(lab, &mut progress, || false)
}

/// Like [`tour`], stopping before the next step once `interrupted` says so.
pub fn tour_until(lab: &Lab, mut progress: impl FnMut(&StepResult), interrupted: impl Fn() -> bool) -> Vec<StepResult> {
    let mut results = Vec::new();
    let steps = if lab.options().appliance { APPLIANCE_STEPS } else { STEPS };
    for (name, step) in steps {
        if interrupted() {
            break;
        }
        let start = Instant::now();
        let outcome = match step(lab) {
            Ok(detail) => Outcome::Passed(detail),
            Err(problem) => Outcome::Failed(problem),
        };
        let result = StepResult { name, outcome, elapsed: start.elapsed() };
        progress(&result);
        results.push(result);
    }
    for (name, issue) in NOT_BUILT_YET {
        results.push(StepResult { name, outcome: Outcome::NotBuiltYet(issue), elapsed: Duration::ZERO });
    }
    results
}

/// The summary table.
pub fn table(results: &[StepResult]) -> String {
    let width = results.iter().map(|r| r.name.chars().count()).max().unwrap_or(0);
    let mut text = String::new();
    for result in results {
        let (mark, detail, time) = match &result.outcome {
            Outcome::Passed(detail) => ("✔", detail.as_str(), format!("{:>5.1} s", result.elapsed.as_secs_f64())),
            Outcome::Failed(problem) => ("✘", problem.as_str(), format!("{:>5.1} s", result.elapsed.as_secs_f64())),
            Outcome::NotBuiltYet(issue) => ("·", *issue, "       ".to_string()),
        };
        let detail = detail.lines().next().unwrap_or_default();
        let prefix = if matches!(result.outcome, Outcome::NotBuiltYet(_)) { "not built yet: " } else { "" };
        text.push_str(&format!("  {mark} {:<width$}  {time}  {prefix}{detail}\n", result.name));
    }
    text
}

pub fn passed(results: &[StepResult]) -> usize {
    results.iter().filter(|r| matches!(r.outcome, Outcome::Passed(_))).count()
}

pub fn failed(results: &[StepResult]) -> usize {
    results.iter().filter(|r| matches!(r.outcome, Outcome::Failed(_))).count()
}

fn lab_error(error: LabError) -> String {
    error.to_string()
}

fn output_text(output: &Output) -> String {
    output.combined().trim().to_string()
}

fn isp_is_serving(lab: &Lab) -> Result<String, String> {
    let tracker = lab.tracker();
    let isp_ns = lab.isp().netns().name().to_string();
    let isp_processes: Vec<_> = tracker.processes().into_iter().filter(|p| p.namespace == isp_ns).collect();
    if let Some(dead) = isp_processes.iter().find(|p| tracker.exit_status(p.pid).is_some()) {
        return Err(format!("{} is not running", dead.name));
    }
    let dhcpv6 = match lab.isp().options().dhcpv6 {
        Dhcpv6Server::KeaWithPrefixDelegation => "kea DHCPv6 with /56 delegation",
        Dhcpv6Server::DnsmasqWithoutPrefixDelegation => "dnsmasq DHCPv6 (no delegation)",
    };
    Ok(format!("dnsmasq DHCPv4, {dhcpv6}, radvd, unbound, chronyd (NTP), HTTP host {INTERNET_HOST_V4}"))
}

fn routerd_is_serving(lab: &Lab) -> Result<String, String> {
    let router = lab.router();
    if !router.routerd_running() {
        return Err("routerd is not running".to_string());
    }
    const SERVING: &str = "serving gRPC with mutual TLS on ";
    let lan_api = format!("{ROUTER_LAN_V4}:{API_PORT}");
    // The listeners are bound before routerd starts its services; the API logs its addresses a moment later.
    let log = crate::wait::until("routerd to log its API addresses", Duration::from_secs(5), || {
        let log = router.routerd_log();
        Ok(log.contains(&format!("{SERVING}{lan_api}")).then_some(log))
    })
    .map_err(|e| format!("routerd does not serve its API on the LAN address {lan_api}: {e}"))?;
    let addrs: Vec<&str> = log.lines().filter_map(|l| l.split_once(SERVING).map(|(_, addr)| addr.trim())).collect();
    Ok(format!("in namespace {}; API with mutual TLS on {}", router.netns().name(), addrs.join(", ")))
}

fn uplink_has_a_lease(lab: &Lab) -> Result<String, String> {
    let status = lab
        .router()
        .wait_for_status("a DHCPv4 lease on the uplink", Duration::from_secs(15), |s| {
            s["uplink"]["dhcp4"]["state"] == "bound"
        })
        .map_err(lab_error)?;
    let lease = &status["uplink"]["dhcp4"];
    let addr = lease["addr"].as_str().unwrap_or_default();
    let address = addr.split('/').next().unwrap_or_default();
    let body = crate::clients::curl(lab.router().netns(), &format!("http://{INTERNET_HOST_V4}/")).map_err(lab_error)?;
    if body.trim() != format!("client={address}") {
        return Err(format!("the internet host saw {body:?}, not the uplink address {address}"));
    }
    Ok(format!(
        "{addr} from dnsmasq via {}, DNS {}; the internet host sees {address}",
        lease["gateway"].as_str().unwrap_or("?"),
        lease["dns_servers"]
            .as_array()
            .map(|d| d.iter().filter_map(|s| s.as_str()).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    ))
}

fn uplink_has_a_prefix(lab: &Lab) -> Result<String, String> {
    if lab.isp().options().dhcpv6 == Dhcpv6Server::DnsmasqWithoutPrefixDelegation {
        let status = lab
            .router()
            .wait_for_status("IPv6 reported unavailable", Duration::from_secs(15), |s| {
                s["uplink"]["ipv6_unavailable"] == true
            })
            .map_err(lab_error)?;
        return Ok(format!(
            "no prefix from this ISP, and routerd says so: {}",
            status["uplink"]["ipv6_unavailable_reason"]
        ));
    }
    let status = lab
        .router()
        .wait_for_status("a delegated prefix", Duration::from_secs(15), |s| {
            s["uplink"]["dhcp6"]["prefixes"].as_array().is_some_and(|p| !p.is_empty())
        })
        .map_err(lab_error)?;
    let lease = &status["uplink"]["dhcp6"];
    let prefix = lease["prefixes"][0].as_str().unwrap_or_default();
    let address = lease["addr"].as_str().unwrap_or_default();
    let lan0 =
        lab.router().netns().ip(&["-6", "-o", "addr", "show", "dev", "lan0", "scope", "global"]).map_err(lab_error)?;
    let lan0_address = lan0.split_whitespace().skip_while(|w| *w != "inet6").nth(1).unwrap_or("none").to_string();
    let url = format!("http://[{INTERNET_HOST_V6}]/");
    let body = crate::wait::until("IPv6 to the internet host", Duration::from_secs(10), || {
        Ok(crate::clients::curl(lab.router().netns(), &url).ok())
    })
    .map_err(lab_error)?;
    if body.trim() != format!("client={address}") {
        return Err(format!("the internet host saw {body:?}, not the uplink's IPv6 address {address}"));
    }
    Ok(format!("{prefix} from kea (lan0 gets {lan0_address}), address {address}; IPv6 to the internet host works"))
}

fn lan_device_pairs(lab: &Lab) -> Result<String, String> {
    let device = lab.lan(1);
    let addr = device.set_static_ipv4().map_err(lab_error)?;
    let code = lab.router().pairing_code().map_err(lab_error)?;
    let output = device.rtrctl(&["pair", &code, "--name", "lan1-laptop"]).map_err(lab_error)?;
    if !output.success {
        return Err(format!("rtrctl pair failed: {}", output_text(&output)));
    }
    Ok(format!("lan1 ({addr}) paired with one-time code {code} as lan1-laptop"))
}

fn status_from_the_lan(lab: &Lab) -> Result<String, String> {
    let output = lab.lan(1).rtrctl(&["-o", "json", "status"]).map_err(lab_error)?;
    if !output.success {
        return Err(format!("rtrctl status failed: {}", output_text(&output)));
    }
    let status: serde_json::Value =
        serde_json::from_str(&output.stdout).map_err(|e| format!("rtrctl -o json status is not JSON: {e}"))?;
    let hostname = status["hostname"].as_str().unwrap_or_default();
    if hostname != "router" {
        return Err(format!("hostname {hostname:?}, expected \"router\" from routerd.json"));
    }
    let interfaces = status["interfaces"].as_array().cloned().unwrap_or_default();
    let role_of =
        |name: &str| interfaces.iter().find(|i| i["name"] == name).and_then(|i| i["role"].as_str().map(str::to_string));
    if role_of("uplink0").as_deref() != Some("uplink") || role_of("lan0").as_deref() != Some("lan") {
        return Err(format!("interfaces without the expected roles: {interfaces:?}"));
    }
    let services = status["services"].as_array().cloned().unwrap_or_default();
    let running = services.iter().filter(|s| s["state"] == "running").count();
    if running != services.len() || services.is_empty() {
        return Err(format!("not every service is running: {services:?}"));
    }
    let problems = status["config_problems"].as_array().map(Vec::len).unwrap_or(0);
    if problems != 0 {
        return Err(format!("routerd reports configuration problems: {}", status["config_problems"]));
    }
    Ok(format!(
        "hostname router, uplink0 = uplink, lan0 = lan ({ROUTER_LAN_V4}:{API_PORT}), {running} of {} services running",
        services.len()
    ))
}

fn strangers_are_refused(lab: &Lab) -> Result<String, String> {
    let stranger = lab.lan(2);
    stranger.set_static_ipv4().map_err(lab_error)?;
    // A third-party gRPC request without a client certificate: the router must answer UNAUTHENTICATED (16).
    let url = format!("https://{ROUTER_LAN_V4}:{API_PORT}/router.v1.SystemService/GetStatus");
    let headers = stranger.netns().run(
        "curl",
        &[
            "--silent",
            "--show-error",
            "--insecure",
            "--http2",
            "--max-time",
            "5",
            "--request",
            "POST",
            "--header",
            "content-type: application/grpc",
            "--header",
            "te: trailers",
            "--data-binary",
            "",
            "--dump-header",
            "-",
            &url,
        ],
    );
    let headers = headers.map_err(lab_error)?;
    if !headers.lines().any(|l| l.trim().eq_ignore_ascii_case("grpc-status: 16")) {
        return Err(format!("a request without a client certificate was not refused:\n{headers}"));
    }
    // A pairing code works once: a second device using the same code is refused.
    let code = lab.router().pairing_code().map_err(lab_error)?;
    let first = stranger.rtrctl(&["pair", &code, "--name", "lan2-phone"]).map_err(lab_error)?;
    if !first.success {
        return Err(format!("pairing lan2 failed: {}", output_text(&first)));
    }
    let other_identity = lab.work_dir().join("lan2/second-identity.pem");
    let reused =
        stranger.rtrctl_with_identity(&other_identity, &["pair", &code, "--name", "intruder"]).map_err(lab_error)?;
    if reused.success {
        return Err("a pairing code worked twice".to_string());
    }
    Ok("curl without a certificate: UNAUTHENTICATED; a pairing code used twice: refused".to_string())
}

fn lan_device_gets_a_lease(lab: &Lab) -> Result<String, String> {
    let device = lab.lan(2);
    let client =
        device.start_dhcp_client(crate::DhcpClientKind::Udhcpc { hostname: Some("lan2".into()) }).map_err(lab_error)?;
    let lease = client.wait_bound(Duration::from_secs(15)).map_err(lab_error)?;
    let addr = lease.get("ip").unwrap_or_default().to_string();
    if lease.get("router") != Some(&ROUTER_LAN_V4.to_string()) || lease.get("dns") != Some(&ROUTER_LAN_V4.to_string()) {
        return Err(format!("the lease does not name the router as gateway and DNS: {lease:?}"));
    }
    let listed = lab.router().rtrctl(&["-o", "json", "leases", "list"]).map_err(lab_error)?;
    let leases: Vec<serde_json::Value> =
        serde_json::from_str(&listed.stdout).map_err(|e| format!("rtrctl leases list: {e}: {}", listed.combined()))?;
    let entry = leases
        .iter()
        .find(|l| l["addr"] == addr.as_str())
        .ok_or_else(|| format!("{addr} is not listed: {leases:?}"))?;
    Ok(format!(
        "lan2 (udhcpc) got {addr} (gateway and DNS {ROUTER_LAN_V4}); `rtrctl leases list` shows it as {:?}",
        entry["hostname"].as_str().unwrap_or_default()
    ))
}

fn lan_device_gets_ipv6(lab: &Lab) -> Result<String, String> {
    if lab.isp().options().dhcpv6 == Dhcpv6Server::DnsmasqWithoutPrefixDelegation {
        return Ok("no delegated prefix from this ISP, so no router advertisements (as expected)".to_string());
    }
    let advert = crate::wait::until("a router advertisement with a prefix", Duration::from_secs(15), || {
        let advert = lab.lan(1).rdisc6()?;
        Ok((!advert.prefixes.is_empty()).then_some(advert))
    })
    .map_err(lab_error)?;
    let prefix = advert.prefixes[0].prefix.clone();
    let network = prefix.trim_end_matches("::/64").to_string();
    let address = crate::wait::until("a SLAAC address on lan1", Duration::from_secs(15), || {
        Ok(lab.lan(1).global_ipv6_addresses()?.into_iter().find(|a| a.starts_with(&network)))
    })
    .map_err(lab_error)?;
    Ok(format!(
        "rdisc6: {prefix} (autonomous), RDNSS {}, DNSSL lan; lan1 formed {address} by SLAAC",
        advert.rdnss.join(" ")
    ))
}

fn lan_names_resolve(lab: &Lab) -> Result<String, String> {
    let router = ROUTER_LAN_V4.to_string();
    let device = lab.lan(1);
    let lan2 = device.dig(&router, "lan2.lan", "A").map_err(lab_error)?;
    if lan2.is_empty() {
        return Err("lan2.lan does not resolve".to_string());
    }
    let upstream = device.dig(&router, "www.example.org", "A").map_err(lab_error)?;
    if upstream != [INTERNET_HOST_V4.to_string()] {
        return Err(format!("www.example.org resolved to {upstream:?}"));
    }
    let rebinding = device.dig(&router, REBINDING_NAME.0, "A").map_err(lab_error)?;
    if !rebinding.is_empty() {
        return Err(format!("{} resolved to the private {rebinding:?}", REBINDING_NAME.0));
    }
    Ok(format!(
        "from lan1: lan2.lan = {}, www.example.org = {INTERNET_HOST_V4} (via the ISP), {} blocked (rebinding)",
        lan2.join(" "),
        REBINDING_NAME.0
    ))
}

fn uplink_address(lab: &Lab) -> Result<String, String> {
    let status = lab.router().status().map_err(lab_error)?;
    Ok(status["uplink"]["dhcp4"]["addr"].as_str().unwrap_or_default().split('/').next().unwrap_or_default().to_string())
}

fn lan_device_reaches_the_internet(lab: &Lab) -> Result<String, String> {
    let uplink = uplink_address(lab)?;
    let seen = crate::clients::curl(lab.lan(2).netns(), &format!("http://{INTERNET_HOST_V4}/")).map_err(lab_error)?;
    if seen.trim() != format!("client={uplink}") {
        return Err(format!("the internet host saw {seen:?}, not the router's {uplink}"));
    }
    Ok(format!("lan2 → {INTERNET_HOST_V4}: the internet host sees the router's {uplink} (masquerade)"))
}

fn port_forward_reaches_lan1(lab: &Lab) -> Result<String, String> {
    lab.lan(1).serve_http(80).map_err(lab_error)?;
    let uplink = uplink_address(lab)?;
    let url = format!("http://{uplink}:{DEMO_FORWARD_PORT}/");
    let seen = crate::clients::curl(lab.isp().netns(), &url).map_err(lab_error)?;
    if seen.trim() != format!("client={ISP_V4}") {
        return Err(format!("{url} from the ISP answered {seen:?}"));
    }
    Ok(format!("from the ISP, {url} reaches lan1's web server (it sees {ISP_V4})"))
}

fn capture_decodes(lab: &Lab) -> Result<String, String> {
    let router = lab.router();
    let file = lab.work_dir().join("demo-capture.pcapng");
    let identity = router.identity().display().to_string();
    let args: Vec<String> =
        ["--router", "127.0.0.1:9339", "--identity", &identity, "capture", "-w", &file.to_string_lossy()]
            .map(String::from)
            .to_vec();
    let pid = lab
        .tracker()
        .spawn(
            "rtrctl capture",
            router.netns(),
            router.rtrctl_binary(),
            &args,
            &[],
            &lab.work_dir().join("demo-capture.log"),
        )
        .map_err(lab_error)?;
    // The ring's backfill arrives at once; wait until tshark finds the DHCP leases of the tour in it.
    let summary = crate::wait::until("tshark to decode the capture", Duration::from_secs(10), || {
        let text = crate::tshark::fields(&file, None, &["frame.interface_name", "_ws.col.Protocol"])?;
        Ok(text.contains("lan0\tDHCP").then_some(text))
    })
    .map_err(lab_error)?;
    lab.tracker().stop(pid);
    let mut counts = std::collections::BTreeMap::new();
    for line in summary.lines() {
        *counts.entry(line.replace('\t', " ")).or_insert(0) += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(what, n)| format!("{n} {what}")).collect();
    Ok(format!("rtrctl capture → pcapng, tshark decodes: {}", parts.join(", ")))
}

/// `rtrctl diag`: the first line is the verdict, the tree follows (the live output prints it).
fn diagnostics_tree(lab: &Lab) -> Result<String, String> {
    // The ISP's router advertisements come every few seconds; the tree is green once one was seen.
    let mut last = String::new();
    let output = crate::wait::until("a healthy diagnostics tree", Duration::from_secs(30), || {
        let output = lab.router().rtrctl(&["diag"])?;
        last = output_text(&output);
        Ok(output.success.then_some(output))
    })
    .map_err(|e| format!("{e}; the last tree:\n{last}"))?;
    let verdict = output.stdout.lines().last().unwrap_or_default().to_string();
    let tree: Vec<&str> = output.stdout.lines().filter(|l| !l.is_empty() && *l != verdict).collect();
    Ok(format!("rtrctl diag: {verdict}\n{}", tree.join("\n")))
}

fn ping_from_the_router(lab: &Lab) -> Result<String, String> {
    let name = INTERNET_NAMES[0];
    let output = lab.router().rtrctl(&["-o", "json", "ping", "-c", "3", "-i", "0.2", name]).map_err(lab_error)?;
    if !output.success {
        return Err(output_text(&output));
    }
    let ping: serde_json::Value = serde_json::from_str(&output.stdout).map_err(|e| e.to_string())?;
    let trace = lab.router().rtrctl(&["-o", "json", "traceroute", name]).map_err(lab_error)?;
    if !trace.success {
        return Err(output_text(&trace));
    }
    let trace: serde_json::Value = serde_json::from_str(&trace.stdout).map_err(|e| e.to_string())?;
    Ok(format!(
        "rtrctl ping {name}: {}/{} replies from {}, avg {} ms; traceroute: {} hop(s)",
        ping["summary"]["received"],
        ping["summary"]["sent"],
        ping["replies"][0]["source"].as_str().unwrap_or_default(),
        ping["summary"]["avg_ms"],
        trace["hops"].as_array().map(Vec::len).unwrap_or(0)
    ))
}

fn metrics_scrape(lab: &Lab) -> Result<String, String> {
    use crate::metrics::{promtool_check, sample, scrape, sum};
    let text = scrape(lab.lan(2).netns(), &ROUTER_LAN_V4.to_string()).map_err(lab_error)?;
    let checked = promtool_check(&text).map_err(lab_error)?;
    if !checked.success {
        return Err(format!("promtool check metrics: {}", output_text(&checked)));
    }
    let series = text.lines().filter(|l| !l.starts_with('#')).count();
    Ok(format!(
        "http://{ROUTER_LAN_V4}:8066/metrics from lan2: {series} series, promtool ok; {} DNS queries, {} DHCP \
         messages, {} packets forwarded, {:.1} MiB resident",
        sum(&text, "routerd_dns_queries_total"),
        sum(&text, "routerd_dhcp4_server_received_total"),
        sum(&text, "routerd_firewall_forwarded_packets_total"),
        sample(&text, "process_resident_memory_bytes").unwrap_or(0.0) / 1048576.0
    ))
}

fn backup_taken(lab: &Lab) -> Result<String, String> {
    let file = lab.work_dir().join("demo-backup.tar.gz");
    let output =
        lab.router().rtrctl(&["-o", "json", "backup", "create", &file.to_string_lossy()]).map_err(lab_error)?;
    if !output.success {
        return Err(output_text(&output));
    }
    let doc: serde_json::Value = serde_json::from_str(&output.stdout).map_err(|e| e.to_string())?;
    let listing = std::process::Command::new("tar")
        .args(["-tzf", &file.to_string_lossy()])
        .output()
        .map_err(|e| format!("tar: {e}"))?;
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    if !listing.lines().any(|l| l == "dhcp4d/leases.json") {
        return Err(format!("the backup lacks dhcp4d/leases.json: {listing}"));
    }
    Ok(format!(
        "rtrctl backup create: {} files, {} bytes, sha256 {}…; tar lists dhcp4d/leases.json",
        doc["files"],
        doc["size"],
        doc["sha256"].as_str().unwrap_or_default().get(..12).unwrap_or_default()
    ))
}

fn update_performed(lab: &Lab) -> Result<String, String> {
    let binary = lab.work_dir().join("routerd-next");
    let (size, _) = lab.router().another_build(&binary, "demo build").map_err(lab_error)?;
    let backup = lab.work_dir().join("demo-pre-update.tar.gz");
    let output = lab
        .router()
        .rtrctl(&["-o", "json", "update", "--binary", &binary.to_string_lossy(), "--backup", &backup.to_string_lossy()])
        .map_err(lab_error)?;
    let doc: serde_json::Value = serde_json::from_str(&output.stdout).unwrap_or_default();
    if !output.success || doc["outcome"] != "updated" {
        return Err(output_text(&output));
    }
    let answer = lab.lan(1).dig(&ROUTER_LAN_V4.to_string(), "www.example.org", "A").map_err(lab_error)?;
    Ok(format!(
        "rtrctl update: health ok, backup, {} MiB uploaded, confirmed healthy in {:.1} s: now {} (was {}); DNS answers \
         ({})",
        size >> 20,
        doc["seconds"].as_f64().unwrap_or(0.0),
        doc["running_version"].as_str().unwrap_or_default(),
        doc["previous_version"].as_str().unwrap_or_default(),
        answer.join(", ")
    ))
}

fn revoked_identity_is_refused(lab: &Lab) -> Result<String, String> {
    lab.router().routerd_cli(&["pki", "revoke", "--name", "lan1-laptop"]).map_err(lab_error)?;
    let output = lab.lan(1).rtrctl(&["status"]).map_err(lab_error)?;
    if output.success {
        return Err("the revoked identity lan1-laptop still got the status".to_string());
    }
    // Other identities keep working.
    let still = lab.router().rtrctl(&["status"]).map_err(lab_error)?;
    if !still.success {
        return Err(format!("the lab's identity {LAB_IDENTITY_NAME:?} stopped working too: {}", output_text(&still)));
    }
    Ok("lan1-laptop revoked with `routerd pki revoke`: refused; other identities unaffected".to_string())
}

/// The appliance's steps: everything from a LAN device (the VM has no namespace of its own to run rtrctl in).
mod appliance {
    use std::time::Duration;

    use super::{lab_error, output_text};
    use crate::{addresses::*, lab::Lab};

    const BOOT: Duration = Duration::from_secs(300);
    const STEP: Duration = Duration::from_secs(60);
    const SERVING: &str = "serving gRPC with mutual TLS on 192.0.2.1";

    fn vm(lab: &Lab) -> Result<crate::appliance::Vm, String> {
        lab.appliance().ok_or_else(|| "the appliance did not boot".to_string())
    }

    fn rtrctl(lab: &Lab, args: &[&str]) -> Result<String, String> {
        let output = lab.lan(1).rtrctl_with_identity(&lab.router().identity(), args).map_err(lab_error)?;
        if output.success {
            Ok(output.stdout)
        } else {
            Err(format!("rtrctl {}: {}", args.join(" "), output_text(&output)))
        }
    }

    fn status_json(lab: &Lab) -> Result<serde_json::Value, String> {
        serde_json::from_str(&rtrctl(lab, &["-o", "json", "status"])?).map_err(|e| format!("status JSON: {e}"))
    }

    pub(super) fn image_built_and_booted(lab: &Lab) -> Result<String, String> {
        lab.boot_appliance().map_err(lab_error)?;
        let image = lab.work_dir().join("appliance/router.img");
        let blocks = std::fs::metadata(&image).map(|m| std::os::unix::fs::MetadataExt::blocks(&m)).unwrap_or(0);
        Ok(format!("routerd-image built {} ({} MiB on disk) and qemu booted it", image.display(), (blocks * 512) >> 20))
    }

    pub(super) fn routerd_serves(lab: &Lab) -> Result<String, String> {
        let vm = vm(lab)?;
        vm.wait_for_console(SERVING, 0, BOOT).map_err(lab_error)?;
        Ok(format!("routerd serves its API on the LAN {:.1} s after power-on", vm.powered_on.elapsed().as_secs_f64()))
    }

    pub(super) fn lan_lease(lab: &Lab) -> Result<String, String> {
        let client = lab
            .lan(1)
            .start_dhcp_client(crate::DhcpClientKind::Udhcpc { hostname: Some("lan1".into()) })
            .map_err(lab_error)?;
        let lease = client.wait_bound(STEP).map_err(lab_error)?;
        Ok(format!("lan1 (udhcpc) got {} from the appliance", lease.get("ip").unwrap_or_default()))
    }

    pub(super) fn status(lab: &Lab) -> Result<String, String> {
        let status = crate::wait::until("the uplink's lease and prefix", STEP, || {
            let status = status_json(lab).map_err(|e| crate::LabError::unexpected("status", e))?;
            let ready = status["uplink"]["dhcp4"]["state"] == "bound"
                && status["uplink"]["dhcp6"]["prefixes"].as_array().is_some_and(|p| !p.is_empty());
            Ok(ready.then_some(status))
        })
        .map_err(lab_error)?;
        Ok(format!(
            "rtrctl status with the identity issued before the build: uplink {}, prefix {}",
            status["uplink"]["dhcp4"]["addr"].as_str().unwrap_or_default(),
            status["uplink"]["dhcp6"]["prefixes"][0].as_str().unwrap_or_default()
        ))
    }

    pub(super) fn clock(lab: &Lab) -> Result<String, String> {
        let status = crate::wait::until("the clock set", STEP, || {
            let status = status_json(lab).map_err(|e| crate::LabError::unexpected("status", e))?;
            Ok((status["clock"]["state"] == "synchronized").then_some(status))
        })
        .map_err(lab_error)?;
        let clock = &status["clock"];
        Ok(format!(
            "the VM's clock started in 2020; set from {} (it was {:+.0} s off), now {}",
            clock["server"].as_str().unwrap_or_default(),
            clock["offset_seconds"].as_f64().unwrap_or_default(),
            clock["now"].as_str().unwrap_or_default()
        ))
    }

    pub(super) fn names(lab: &Lab) -> Result<String, String> {
        let answer = lab.lan(1).dig(&ROUTER_LAN_V4.to_string(), "www.example.org", "A").map_err(lab_error)?;
        if answer != [INTERNET_HOST_V4.to_string()] {
            return Err(format!("www.example.org resolved to {answer:?}"));
        }
        Ok(format!("from lan1: www.example.org = {INTERNET_HOST_V4}, through the appliance's DNS"))
    }

    pub(super) fn internet(lab: &Lab) -> Result<String, String> {
        let seen =
            crate::clients::curl(lab.lan(1).netns(), &format!("http://{INTERNET_HOST_V4}/")).map_err(lab_error)?;
        Ok(format!("lan1 → {INTERNET_HOST_V4}: the internet host sees {}", seen.trim().trim_start_matches("client=")))
    }

    pub(super) fn diagnostics(lab: &Lab) -> Result<String, String> {
        let mut last = String::new();
        let tree = crate::wait::until("a healthy diagnostics tree", STEP, || {
            let output = lab.lan(1).rtrctl_with_identity(&lab.router().identity(), &["diag"])?;
            last = output_text(&output);
            Ok(output.success.then_some(output.stdout))
        })
        .map_err(|e| format!("{e}; the last tree:\n{last}"))?;
        Ok(format!("rtrctl diag: {}", tree.lines().last().unwrap_or_default()))
    }

    pub(super) fn reboot(lab: &Lab) -> Result<String, String> {
        let vm = vm(lab)?;
        let before = vm.console_text().len();
        rtrctl(lab, &["reboot", "--yes"])?;
        let started = std::time::Instant::now();
        vm.wait_for_console(SERVING, before, BOOT).map_err(lab_error)?;
        crate::wait::until("the API after the reboot", STEP, || {
            let output = lab.lan(1).rtrctl_with_identity(&lab.router().identity(), &["status"])?;
            Ok(output.success.then_some(()))
        })
        .map_err(lab_error)?;
        Ok(format!("rtrctl reboot: back and serving after {:.1} s", started.elapsed().as_secs_f64()))
    }
}
