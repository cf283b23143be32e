//! An ACK means the lease is on disk: with `--perm` on a full file system routerd acknowledges no lease, says
//! why in `rtrctl status` and `rtrctl diag`, and serves again by itself once there is room.

use std::{path::PathBuf, process::Command, time::Duration};

use integration::{DhcpClientKind, Lab, LabOptions, wait};

const TIMEOUT: Duration = Duration::from_secs(20);

/// A small tmpfs mounted over the lab's `--perm` (with its files copied in), unmounted when dropped.
struct SmallPerm(PathBuf);

impl SmallPerm {
    fn mount(perm: PathBuf, scratch: PathBuf) -> SmallPerm {
        let run = |args: &[&str]| {
            let status = Command::new(args[0]).args(&args[1..]).status().expect(args[0]);
            assert!(status.success(), "{args:?}");
        };
        let (perm_text, scratch_text) = (perm.display().to_string(), scratch.display().to_string());
        run(&["cp", "-a", &format!("{perm_text}/."), &scratch_text]);
        run(&["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", &perm_text]);
        let mounted = SmallPerm(perm);
        run(&["cp", "-a", &format!("{scratch_text}/."), &perm_text]);
        mounted
    }
}

impl Drop for SmallPerm {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The lease file and its journals, as the next start reads them.
fn lease_files(perm: &std::path::Path) -> String {
    ["leases.json", "leases.journal.1", "leases.journal"]
        .iter()
        .map(|name| std::fs::read_to_string(perm.join("dhcp4d").join(name)).unwrap_or_default())
        .collect()
}

fn dhcp4d(lab: &Lab) -> serde_json::Value {
    lab.router()
        .status()
        .ok()
        .and_then(|s| s["services"].as_array().into_iter().flatten().find(|s| s["name"] == "dhcp4d").cloned())
        .unwrap_or_default()
}

#[test]
fn no_lease_is_acknowledged_that_is_not_on_disk_and_service_resumes_when_space_returns() {
    let lab = Lab::start(LabOptions { start_routerd: false, ..LabOptions::default() }).expect("the lab starts");
    let scratch = lab.work_dir().join("perm-copy");
    std::fs::create_dir_all(&scratch).expect("mkdir");
    let perm = lab.router().perm();
    let _small = SmallPerm::mount(perm.clone(), scratch);
    lab.check(lab.router().start_routerd(), "routerd");
    let first =
        lab.check(lab.lan(2).start_dhcp_client(DhcpClientKind::Udhcpc { hostname: Some("first".into()) }), "udhcpc");
    lab.check(first.wait_bound(TIMEOUT), "a lease while there is room");
    first.stop();

    // Fill the file system.
    let filler = perm.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", &format!("of={}", filler.display()), "bs=64k"])
        .stderr(std::process::Stdio::null())
        .status();
    // A change may still fit in the journal's last page, already allocated: then it is on disk, and may be
    // acknowledged. Devices keep asking (a new name each, so each is a new line) until one does not fit.
    let mut attempt = 0;
    let (full, failed) = loop {
        attempt += 1;
        assert!(attempt <= 60, "the server never ran out of room: {}", lease_files(&perm));
        let name = format!("full-{attempt}-{}", "x".repeat(40));
        let client = lab.lan(1).start_dhcp_client(DhcpClientKind::Udhcpc { hostname: Some(name.clone()) });
        let client = lab.check(client, "udhcpc");
        let outcome = wait::until("an ACK or the full disk reported", TIMEOUT, || {
            let service = dhcp4d(&lab);
            if service["state"] != "running" && service["message"].to_string().contains("No space left") {
                return Ok(Some(Err(service)));
            }
            Ok(client.events().iter().any(|e| e.name == "bound").then_some(Ok(())))
        });
        match lab.check(outcome, "dhcp4d status") {
            Ok(()) => {
                assert!(lease_files(&perm).contains(&name), "{name} was acknowledged but is not on disk");
                client.stop();
            }
            Err(service) => break (client, service),
        }
    };
    println!("while full (after {} acknowledged changes that still fitted): {failed}", attempt - 1);
    assert!(full.events().iter().all(|e| e.name != "bound"), "a lease was acknowledged that is not on disk");
    let metrics =
        lab.check(integration::clients::curl(lab.router().netns(), "http://127.0.0.1:8066/metrics"), "metrics");
    assert!(metrics.contains("routerd_service_up{service=\"dhcp4d\"} 0"), "{metrics}");
    let diag = lab.check(lab.router().rtrctl(&["diag"]), "rtrctl diag");
    assert!(diag.stdout.lines().any(|l| l.contains('✘') && l.contains("DHCPv4 server")), "{}", diag.stdout);

    // Room again: the server comes back by itself and the waiting device gets its lease, on disk.
    std::fs::remove_file(&filler).expect("rm filler");
    let lease = lab.check(full.wait_bound(Duration::from_secs(90)), "a lease once there is room");
    let ip = lease.get("ip").unwrap_or_default().to_string();
    let leases = lease_files(&perm);
    assert!(leases.contains(&ip), "{ip} is not on disk: {leases}");
    full.stop();
}

/// A clean stop leaves router7's `leases.json` and no journal; what the owner writes into that file while routerd
/// is stopped is what the next start serves.
#[test]
fn a_stopped_router_has_only_router7s_lease_file_and_a_hand_edit_is_served_at_the_next_start() {
    let lab = Lab::start(LabOptions::default()).expect("the lab starts");
    let client =
        lab.check(lab.lan(1).start_dhcp_client(DhcpClientKind::Udhcpc { hostname: Some("before".into()) }), "udhcpc");
    lab.check(client.wait_bound(TIMEOUT), "a lease");
    client.stop();
    let dir = lab.router().perm().join("dhcp4d");
    assert!(dir.join("leases.journal").exists(), "a running server journals its changes");
    lab.router().stop_routerd();
    assert!(!dir.join("leases.journal").exists() && !dir.join("leases.journal.1").exists(), "journal left behind");
    let text = std::fs::read_to_string(dir.join("leases.json")).expect("leases.json");
    let mut leases: Vec<serde_json::Value> = serde_json::from_str(&text).expect("a JSON array");
    let first = leases.iter().find(|l| l["hardware_addr"] == lab.lan(1).mac()).cloned().expect("lan1's lease");
    for field in ["num", "addr", "hardware_addr", "hostname", "hostname_override", "expiry", "last_ack"] {
        assert!(first.get(field).is_some(), "router7's field {field} is missing: {first}");
    }
    assert_eq!(first["hostname"], "before");

    // By hand: lan2 gets a static address, lan1's lease a name of the owner's choosing.
    leases.push(serde_json::json!({
        "num": 77, "addr": "192.0.2.177", "hardware_addr": lab.lan(2).mac(), "hostname": "fixed",
        "hostname_override": "", "expiry": "0001-01-01T00:00:00Z"
    }));
    for lease in &mut leases {
        if lease["hardware_addr"] == lab.lan(1).mac() {
            lease["hostname_override"] = "renamed".into();
        }
    }
    std::fs::write(dir.join("leases.json"), serde_json::to_string_pretty(&leases).expect("JSON")).expect("edit");
    lab.check(lab.router().start_routerd(), "routerd after the edit");
    let second = lab.check(lab.lan(2).start_dhcp_client(DhcpClientKind::Udhcpc { hostname: None }), "udhcpc");
    let lease = lab.check(second.wait_bound(TIMEOUT), "lan2's lease");
    assert_eq!(lease.get("ip"), Some("192.0.2.177"), "{lease:?}");
    second.stop();
    let answer = lab.check(
        wait::until("the owner's name to resolve", TIMEOUT, || {
            let found = lab.lan(2).dig(&integration::addresses::ROUTER_LAN_V4.to_string(), "renamed.lan", "A")?;
            Ok((!found.is_empty()).then_some(found))
        }),
        "dig renamed.lan",
    );
    assert_eq!(answer, [first["addr"].as_str().unwrap_or_default().to_string()]);
}
