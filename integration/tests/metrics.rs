//! `/metrics` on port 8066: valid for `promtool check metrics`, reachable from the LAN and loopback but not the
//! uplink, and its counters move when DHCP, DNS and forwarded traffic flow.

use std::time::Duration;

use integration::{
    DhcpClientKind, Lab, LabOptions,
    addresses::{INTERNET_HOST_V4, INTERNET_NAMES, ROUTER_LAN_V4},
    metrics::{promtool_check, sample, scrape, sum},
};

const TIMEOUT: Duration = Duration::from_secs(30);

#[test]
fn metrics_pass_promtool_stay_off_the_uplink_and_count_traffic() {
    let lab = Lab::start(LabOptions::default()).expect("the lab starts");
    let uplink_address = lab.check(lab.router().wait_for_uplink_address(TIMEOUT), "uplink lease");
    let first = lab.check(lab.lan(2).start_dhcp_client(DhcpClientKind::Udhcpc { hostname: None }), "udhcpc on lan2");
    lab.check(first.wait_bound(TIMEOUT), "lan2's lease");

    let before = lab.check(scrape(lab.router().netns(), "127.0.0.1"), "scraping over loopback");
    let checked = lab.check(promtool_check(&before), "promtool");
    assert!(checked.success, "promtool check metrics: {}\n{before}", checked.combined());
    assert_eq!(
        sample(&before, "routerd_dhcp4_server_leases{interface=\"lan0\",state=\"active\"}"),
        Some(1.0),
        "{before}"
    );
    assert_eq!(sample(&before, "routerd_uplink_client_state{client=\"dhcp4\",state=\"bound\"}"), Some(1.0), "{before}");
    assert!(sample(&before, "routerd_uplink_lease_remaining_seconds{client=\"dhcp4\"}").is_some_and(|s| s > 0.0));
    assert!(sample(&before, "process_resident_memory_bytes").is_some_and(|rss| rss > 1e6), "{before}");
    assert!(sample(&before, "routerd_capture_ring_packets").is_some_and(|n| n > 0.0), "{before}");
    assert_eq!(sample(&before, "routerd_capture_ring_capacity_packets"), Some(20000.0), "routerd.json's size");

    // The LAN reaches it too; the uplink does not (nothing listens there, and the firewall drops it).
    let from_lan = lab.check(scrape(lab.lan(2).netns(), &ROUTER_LAN_V4.to_string()), "scraping from the LAN");
    assert!(from_lan.contains("routerd_build_info"), "{from_lan}");
    assert!(scrape(lab.isp().netns(), &uplink_address).is_err(), "metrics must not be served on the uplink");

    // Traffic: a second device gets a lease, DNS is asked twice (upstream, then the cache) and for a local
    // name, and a page is fetched from the internet through NAT.
    let second = lab.check(lab.lan(1).start_dhcp_client(DhcpClientKind::Udhcpc { hostname: None }), "udhcpc on lan1");
    lab.check(second.wait_bound(TIMEOUT), "lan1's lease");
    let router = ROUTER_LAN_V4.to_string();
    for _ in 0..2 {
        let answers = lab.check(lab.lan(2).dig(&router, INTERNET_NAMES[1], "A"), "dig");
        assert_eq!(answers, vec![INTERNET_HOST_V4.to_string()]);
    }
    lab.check(lab.lan(2).dig(&router, "router.lan", "A"), "dig a local name");
    lab.check(lab.lan(2).curl(&format!("http://{INTERNET_HOST_V4}/")), "curl through NAT");
    // The router's diagnostics publish their verdict.
    lab.check(lab.router().rtrctl(&["diag", "--health"]), "rtrctl diag --health");

    let after = lab.check(scrape(lab.router().netns(), "127.0.0.1"), "scraping again");
    let checked = lab.check(promtool_check(&after), "promtool");
    assert!(checked.success, "promtool check metrics: {}\n{after}", checked.combined());
    let grew = |series: &str| {
        let (old, new) = (sample(&before, series).unwrap_or(0.0), sample(&after, series).unwrap_or(0.0));
        assert!(new > old, "{series}: {old} → {new}\n{after}");
    };
    grew("routerd_dhcp4_server_received_total{type=\"discover\"}");
    grew("routerd_dhcp4_server_received_total{type=\"request\"}");
    grew("routerd_dhcp4_server_sent_total{type=\"offer\"}");
    grew("routerd_dhcp4_server_sent_total{type=\"ack\"}");
    grew("routerd_dns_queries_total{outcome=\"upstream\"}");
    grew("routerd_dns_queries_total{outcome=\"cache_hit\"}");
    grew("routerd_dns_queries_total{outcome=\"local\"}");
    grew("routerd_dns_upstream_duration_seconds_count");
    grew("routerd_firewall_forwarded_packets_total{family=\"ipv4\"}");
    grew("routerd_firewall_forwarded_bytes_total{family=\"ipv4\"}");
    grew("routerd_firewall_nat_packets_total{kind=\"masquerade\",family=\"ipv4\"}");
    assert_eq!(sample(&after, "routerd_dhcp4_server_leases{interface=\"lan0\",state=\"active\"}"), Some(2.0));
    assert!(sum(&after, "routerd_diagnostics_check_ok") > 10.0, "{after}");
    assert!(sample(&after, "routerd_diagnostics_healthy").is_some(), "{after}");

    // Every metric the Grafana dashboard in contrib/ queries is one routerd serves.
    for name in dashboard_metric_names() {
        assert!(after.lines().any(|l| l.starts_with(&name)), "the dashboard queries {name}, which /metrics lacks");
    }

    // Input drops: the ISP knocks on a closed port of the router.
    let dropped = "routerd_firewall_dropped_packets_total{chain=\"input\",family=\"ipv4\",reason=\"policy\"}";
    let drops_before = sample(&after, dropped).unwrap_or(0.0);
    assert!(
        lab.isp()
            .netns()
            .run("curl", &["--silent", "--max-time", "1", &format!("http://{uplink_address}:9339/")])
            .is_err()
    );
    let last = lab.check(scrape(lab.router().netns(), "127.0.0.1"), "scraping a third time");
    assert!(sample(&last, dropped).unwrap_or(0.0) > drops_before, "{dropped}\n{last}");
}

#[test]
fn the_metrics_port_answers_bad_requests_with_errors_and_keeps_serving() {
    let lab = Lab::start(LabOptions::default()).expect("the lab starts");
    let ns = lab.router().netns();
    let status = |args: &[&str]| {
        let mut all = vec!["--silent", "--output", "/dev/null", "--write-out", "%{http_code}", "--max-time", "5"];
        all.extend_from_slice(args);
        lab.check(ns.run("curl", &all), "curl")
    };
    assert_eq!(status(&["http://127.0.0.1:8066/"]), "404");
    assert_eq!(status(&["-X", "POST", "http://127.0.0.1:8066/metrics"]), "405");
    assert_eq!(status(&["http://127.0.0.1:8066/metrics"]), "200");
    assert_eq!(status(&["--head", "http://127.0.0.1:8066/metrics"]), "200");
    // A request head larger than the endpoint takes is refused, not buffered.
    let huge = format!("X-Filler: {}", "a".repeat(20_000));
    let refused = status(&["--header", &huge, "http://127.0.0.1:8066/metrics"]);
    assert!(refused.starts_with('4'), "an oversized head got {refused}");
    // Garbage and a client that connects and says nothing: neither holds the endpoint up.
    let garbage = ns
        .command("/usr/bin/python3")
        .args([
            "-c",
            "import socket\ns=socket.create_connection(('127.0.0.1',8066))\ns.sendall(b'\\x00\\xffnonsense\\r\\n\\r\\n')\n\
             print(s.recv(100).split(b'\\r\\n')[0].decode())\nidle=socket.create_connection(('127.0.0.1',8066))",
        ])
        .output()
        .expect("python3");
    assert_eq!(String::from_utf8_lossy(&garbage.stdout).trim(), "HTTP/1.1 400 Bad Request");
    assert_eq!(status(&["http://[::1]:8066/metrics"]), "200");
    assert!(lab.router().routerd_running());
}

fn contrib(file: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib").join(file)
}

/// The dashboard's queries, with Grafana's variables replaced by what Prometheus would get.
fn dashboard_queries() -> Vec<String> {
    let text = std::fs::read_to_string(contrib("grafana-dashboard.json")).expect("contrib/grafana-dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().cloned().unwrap_or_default();
    assert!(panels.len() >= 10, "{} panels", panels.len());
    panels
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|target| {
            target["expr"].as_str().map(|e| e.replace("$__rate_interval", "1m").replace("$instance", ".*"))
        })
        .collect()
}

fn dashboard_metric_names() -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for query in dashboard_queries() {
        for word in query.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("routerd_") || word.starts_with("process_") {
                names.insert(word.to_string());
            }
        }
    }
    names
}

#[test]
fn the_contrib_scrape_config_and_dashboard_queries_are_valid_for_prometheus() {
    let promtool = integration::programs::PROMTOOL.locate().expect("promtool (Debian package prometheus)");
    let config = std::process::Command::new(&promtool)
        .args(["check", "config", &contrib("prometheus.yml").to_string_lossy()])
        .output()
        .expect("promtool runs");
    assert!(config.status.success(), "{}", String::from_utf8_lossy(&config.stdout));

    // promtool parses PromQL when it checks rules: each dashboard query becomes a recording rule.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (index, query) in dashboard_queries().iter().enumerate() {
        rules
            .push_str(&format!("      - record: dashboard:query{index}\n        expr: {}\n", serde_json::json!(query)));
    }
    let path = dir.path().join("rules.yml");
    std::fs::write(&path, &rules).expect("writing the rules");
    let checked = std::process::Command::new(&promtool)
        .args(["check", "rules", &path.to_string_lossy()])
        .output()
        .expect("promtool runs");
    assert!(
        checked.status.success(),
        "{}{}\n{rules}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(dashboard_metric_names().len() >= 12, "{:?}", dashboard_metric_names());
}
