//! `rtrctl diag`, `ping` and `traceroute` against the lab: all ✔ when healthy, the link failure with its
//! dependents skipped when the ISP's side of the uplink goes down, the same tree with `-o json`.

use std::time::Duration;

use integration::{
    Lab, LabOptions,
    addresses::{INTERNET_HOST_V4, INTERNET_HOST_V6, INTERNET_NAMES, ISP_V4},
    wait,
};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(60);

/// `rtrctl -o json diag`: (exit status, the document).
fn diag_json(lab: &Lab) -> (bool, Value) {
    let output = lab.check(lab.router().rtrctl(&["-o", "json", "diag"]), "rtrctl -o json diag");
    let doc = serde_json::from_str(&output.stdout)
        .unwrap_or_else(|e| lab.fail(&format!("diag JSON: {e}: {}", output.combined())));
    (output.success, doc)
}

/// Every check of the tree, depth first: (id, outcome, detail).
fn flatten(checks: &Value, out: &mut Vec<(String, String, String)>) {
    for check in checks.as_array().into_iter().flatten() {
        let field = |name: &str| check[name].as_str().unwrap_or_default().to_string();
        out.push((field("id"), field("outcome"), field("detail")));
        flatten(&check["children"], out);
    }
}

#[test]
fn diag_is_all_green_when_healthy_and_shows_a_dead_link_with_its_dependents_skipped() {
    let lab = Lab::start(LabOptions::default()).expect("the lab starts");
    lab.check(lab.router().wait_for_uplink_address(TIMEOUT), "uplink lease");
    lab.check(lab.router().wait_for_delegated_prefix(TIMEOUT), "delegated prefix");

    // The LAN's /64 and the ISP's router advertisement arrive within seconds of the lease.
    let mut last = Value::Null;
    let healthy = wait::until("a healthy diagnostics tree", TIMEOUT, || {
        let (success, doc) = diag_json(&lab);
        last = doc.clone();
        Ok((success && doc["healthy"] == true).then_some(doc))
    });
    let healthy = healthy.unwrap_or_else(|e| lab.fail(&format!("{e}; last tree: {last:#}")));
    let mut checks = Vec::new();
    flatten(&healthy["checks"], &mut checks);
    let ids: Vec<&str> = checks.iter().map(|(id, _, _)| id.as_str()).collect();
    for expected in [
        "firewall",
        "uplink/link",
        "uplink/dhcp4",
        "uplink/dhcp4/gateway",
        "internet/tcp",
        "internet/dns",
        "uplink/dhcp6",
        "lan/lan0/ipv6",
        "lan/lan0/ra",
        "uplink/ra",
        "uplink/ra/gateway",
        "internet6/tcp",
        "lan/lan0/link",
        "lan/lan0/dhcp4",
        "lan/lan0/dns",
    ] {
        assert!(ids.contains(&expected), "{expected} missing from {ids:?}");
    }
    assert!(checks.iter().all(|(_, outcome, _)| outcome == "ok"), "{checks:#?}");
    let detail = |id: &str| checks.iter().find(|(i, _, _)| i == id).map(|(_, _, d)| d.clone()).unwrap_or_default();
    assert!(detail("internet/dns").contains(INTERNET_HOST_V4.to_string().as_str()), "{}", detail("internet/dns"));
    assert!(detail("uplink/dhcp4/gateway").contains(&ISP_V4.to_string()), "{}", detail("uplink/dhcp4/gateway"));
    assert!(detail("uplink/ra").contains("fe80::"), "{}", detail("uplink/ra"));

    // The table: one ✔ line per check, nested under its parent, and the verdict.
    let table = lab.check(lab.router().rtrctl(&["diag"]), "rtrctl diag");
    assert!(table.success, "{}", table.combined());
    let lines: Vec<&str> = table.stdout.lines().filter(|l| l.contains(['✔', '✘', '○'])).collect();
    assert_eq!(lines.len(), checks.len(), "{}", table.stdout);
    assert!(lines.iter().all(|l| l.contains('✔')), "{}", table.stdout);
    assert!(table.stdout.contains("└─ ✔ DHCPv4 lease"), "{}", table.stdout);
    assert!(table.stdout.contains(&format!("healthy: all {} checks passed", checks.len())), "{}", table.stdout);
    let health = lab.check(lab.router().rtrctl(&["-o", "json", "diag", "--health"]), "diag --health");
    assert!(health.success, "{}", health.combined());
    let health: Value = serde_json::from_str(&health.stdout).expect("health JSON");
    assert_eq!(health["healthy"], true, "{health}");

    // The ISP's side of the cable goes down.
    lab.check(lab.isp().netns().ip(&["link", "set", "isp0", "down"]), "isp0 down");
    let (success, broken) = wait::until("the link failure in the tree", Duration::from_secs(20), || {
        let (success, doc) = diag_json(&lab);
        Ok((doc["checks"][0]["outcome"] == "failed").then_some((success, doc)))
    })
    .unwrap_or_else(|e| lab.fail(&e.to_string()));
    assert!(!success, "an unhealthy router makes rtrctl diag exit non-zero");
    assert_eq!(broken["healthy"], false);
    let mut checks = Vec::new();
    flatten(&broken["checks"], &mut checks);
    let uplink = &broken["checks"][0];
    assert_eq!(uplink["id"], "uplink/link");
    assert!(uplink["detail"].as_str().unwrap_or_default().contains("no carrier"), "{uplink:#}");
    let mut below = Vec::new();
    flatten(&uplink["children"], &mut below);
    assert!(below.len() >= 10, "{below:#?}");
    for (id, outcome, detail) in &below {
        assert_eq!((outcome.as_str(), detail.as_str()), ("skipped", "skipped: uplink/link failed"), "{id}");
    }
    for (id, outcome, _) in
        checks.iter().filter(|(id, _, _)| id.starts_with("lan/lan0/") && !id.ends_with("ipv6") && !id.ends_with("/ra"))
    {
        assert_eq!(outcome, "ok", "{id}: the LAN still works");
    }
    let table = lab.check(lab.router().rtrctl(&["diag"]), "rtrctl diag");
    assert!(!table.success);
    assert!(
        table.stdout.lines().next().is_some_and(|l| l.starts_with("✘ uplink0 link: uplink0 is")),
        "{}",
        table.stdout
    );
    assert!(table.stdout.contains("○ DHCPv4 lease: skipped: uplink/link failed"), "{}", table.stdout);
    assert!(table.stdout.contains("unhealthy: 1 failed (uplink/link)"), "{}", table.stdout);
    assert!(table.stderr.contains("unhealthy"), "{}", table.stderr);
    let health = lab.check(lab.router().rtrctl(&["-o", "json", "diag", "--health"]), "diag --health");
    let health: Value = serde_json::from_str(&health.stdout).expect("health JSON");
    assert_eq!(health["failed"], serde_json::json!(["uplink/link"]), "{health}");
    lab.check(lab.isp().netns().ip(&["link", "set", "isp0", "up"]), "isp0 up");
}

#[test]
fn ping_and_traceroute_run_from_the_router() {
    let lab = Lab::start(LabOptions::default()).expect("the lab starts");
    lab.check(lab.router().wait_for_uplink_address(TIMEOUT), "uplink lease");

    let ping = lab.check(lab.router().rtrctl(&["ping", "-c", "2", "-i", "0.2", &ISP_V4.to_string()]), "rtrctl ping");
    assert!(ping.success, "{}", ping.combined());
    assert_eq!(ping.stdout.matches(&format!("bytes from {ISP_V4}: icmp_seq=")).count(), 2, "{}", ping.stdout);
    assert!(ping.stdout.contains("2 packets transmitted, 2 received, 0% packet loss"), "{}", ping.stdout);

    // A name, resolved through the ISP's resolver, to the internet host behind the ISP.
    let json = lab.check(lab.router().rtrctl(&["-o", "json", "ping", "-c", "1", INTERNET_NAMES[0]]), "ping a name");
    assert!(json.success, "{}", json.combined());
    let doc: Value = serde_json::from_str(&json.stdout).expect("ping JSON");
    assert_eq!(doc["replies"][0]["source"], INTERNET_HOST_V4.to_string(), "{doc}");
    assert_eq!(doc["summary"]["received"], 1, "{doc}");

    // Nobody has this address: no reply, exit status 1.
    let silent = lab.check(lab.router().rtrctl(&["ping", "-c", "1", "-W", "0.5", "203.0.113.99"]), "ping nobody");
    assert!(!silent.success && silent.stdout.contains("1 packets transmitted, 0 received"), "{}", silent.combined());

    let trace = lab.check(lab.router().rtrctl(&["-o", "json", "traceroute", &INTERNET_HOST_V4.to_string()]), "trace");
    assert!(trace.success, "{}", trace.combined());
    let doc: Value = serde_json::from_str(&trace.stdout).expect("traceroute JSON");
    let hops = doc["hops"].as_array().cloned().unwrap_or_default();
    // The ISP's router holds the internet host's address: the first hop is the destination.
    assert_eq!(hops.len(), 1, "{doc:#}");
    assert_eq!(hops[0]["probes"].as_array().map(Vec::len), Some(3), "{doc:#}");
    assert_eq!(hops[0]["probes"][0]["address"], INTERNET_HOST_V4.to_string(), "{doc:#}");

    lab.check(lab.router().wait_for_delegated_prefix(TIMEOUT), "delegated prefix");
    let ping6 = wait::until("an IPv6 ping through the ISP", Duration::from_secs(30), || {
        let output = lab.router().rtrctl(&["ping", "-c", "1", &INTERNET_HOST_V6.to_string()])?;
        Ok(output.success.then_some(output))
    })
    .unwrap_or_else(|e| lab.fail(&e.to_string()));
    assert!(ping6.stdout.contains(&format!("bytes from {INTERNET_HOST_V6}")), "{}", ping6.stdout);
    let bad = lab.check(lab.router().rtrctl(&["ping", "no..such"]), "ping a bad name");
    assert!(!bad.success && bad.stderr.contains("no..such"), "{}", bad.combined());
}
