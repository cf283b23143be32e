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
    let full = lab.lan(1).start_dhcp_client(DhcpClientKind::Udhcpc { hostname: Some("full".into()) });
    let full = lab.check(full, "udhcpc");
    let failed = lab.check(
        wait::until("the DHCP server to report the full disk", TIMEOUT, || {
            let service = dhcp4d(&lab);
            Ok((service["state"] != "running" && service["message"].to_string().contains("No space left"))
                .then_some(service))
        }),
        "dhcp4d status",
    );
    println!("while full: {failed}");
    assert!(full.events().iter().all(|e| e.name != "bound"), "a lease was acknowledged that is not on disk");
    let leases = std::fs::read_to_string(perm.join("dhcp4d/leases.json")).unwrap_or_default();
    assert!(!leases.contains("\"full\""), "{leases}");
    let metrics =
        lab.check(integration::clients::curl(lab.router().netns(), "http://127.0.0.1:8066/metrics"), "metrics");
    assert!(metrics.contains("routerd_service_up{service=\"dhcp4d\"} 0"), "{metrics}");
    let diag = lab.check(lab.router().rtrctl(&["diag"]), "rtrctl diag");
    assert!(diag.stdout.lines().any(|l| l.contains('✘') && l.contains("DHCPv4 server")), "{}", diag.stdout);

    // Room again: the server comes back by itself and the waiting device gets its lease, on disk.
    std::fs::remove_file(&filler).expect("rm filler");
    let lease = lab.check(full.wait_bound(Duration::from_secs(90)), "a lease once there is room");
    let ip = lease.get("ip").unwrap_or_default().to_string();
    let leases = std::fs::read_to_string(perm.join("dhcp4d/leases.json")).unwrap_or_default();
    assert!(leases.contains(&ip), "{ip} is not on disk: {leases}");
    full.stop();
}
