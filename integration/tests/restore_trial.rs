//! A restore cannot brick the router: a tree routerd would refuse is refused before anything changes, and a
//! tree that routerd starts with but that leaves it unhealthy is rolled back by itself, with the reason shown by
//! `rtrctl backup status`, while LAN devices keep getting addresses and names.

use std::{
    fs,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use integration::{DhcpClientKind, Lab, LabOptions, addresses::*, wait};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Unpacks `backup`, lets `change` edit the tree, and packs it again as `out` (as a user with tar would).
fn edited(backup: &Path, out: &Path, change: impl FnOnce(&Path)) {
    let dir = out.with_extension("d");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("mkdir");
    let unpacked = Command::new("tar").arg("-xzf").arg(backup).arg("-C").arg(&dir).status().expect("tar");
    assert!(unpacked.success());
    change(&dir);
    let packed = Command::new("tar").arg("-czf").arg(out).arg("-C").arg(&dir).arg(".").status().expect("tar");
    assert!(packed.success());
}

fn restore_status(lab: &Lab) -> Option<Value> {
    let output = lab.router().rtrctl(&["-o", "json", "backup", "status"]).ok()?;
    output.success.then(|| serde_json::from_str(&output.stdout).ok()).flatten()
}

#[test]
fn a_restore_routerd_would_refuse_changes_nothing_and_an_unhealthy_one_rolls_itself_back() {
    let lab = Lab::start(LabOptions { start_routerd: false, ..LabOptions::default() }).expect("the lab starts");
    let router = lab.router();
    let settings = router.perm().join("routerd.json");
    let mut routerd_json: Value =
        serde_json::from_str(&fs::read_to_string(&settings).expect("routerd.json")).expect("JSON");
    routerd_json["update_confirm_window_seconds"] = 10.into();
    fs::write(&settings, routerd_json.to_string()).expect("write");
    let original_settings = fs::read(&settings).expect("read");
    lab.check(router.start_routerd(), "routerd");
    lab.check(router.wait_for_uplink_address(TIMEOUT), "uplink lease");
    lab.check(router.wait_for_delegated_prefix(TIMEOUT), "prefix");
    lab.check(
        wait::until("a healthy router", TIMEOUT, || Ok(router.rtrctl(&["diag", "--health"])?.success.then_some(()))),
        "healthy",
    );
    let status = restore_status(&lab).expect("backup status");
    assert_eq!(status["state"], "none", "{status}");
    let backup = lab.work_dir().join("backup.tar.gz");
    let created = lab.check(router.rtrctl(&["backup", "create", &backup.to_string_lossy()]), "backup");
    assert!(created.success, "{}", created.combined());

    // A revocation list of the wrong shape would stop every start: refused, named, nothing changed.
    let broken = lab.work_dir().join("broken.tar.gz");
    edited(&backup, &broken, |dir| fs::write(dir.join("tls/revoked.json"), "[1, 2]").expect("write"));
    let revoked_before = fs::read(router.perm().join("tls/revoked.json")).ok();
    let refused = lab.check(router.rtrctl(&["backup", "restore", &broken.to_string_lossy()]), "restore");
    assert!(!refused.success, "{}", refused.combined());
    assert!(
        refused.stderr.contains("tls/revoked.json") && refused.stderr.contains("would not start"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("nothing changed"), "{}", refused.stderr);
    assert_eq!(fs::read(router.perm().join("tls/revoked.json")).ok(), revoked_before);
    assert!(router.routerd_running());

    // A backup from another network: its DNS servers do not exist here. routerd starts with it, is not healthy,
    // and puts the previous tree back by itself.
    let foreign = lab.work_dir().join("foreign.tar.gz");
    edited(&backup, &foreign, |dir| {
        let path = dir.join("routerd.json");
        let mut json: Value = serde_json::from_str(&fs::read_to_string(&path).expect("read")).expect("JSON");
        json["dns_upstreams"] = serde_json::json!(["203.0.113.99"]);
        fs::write(&path, json.to_string()).expect("write");
    });
    let restored =
        lab.check(router.rtrctl(&["-o", "json", "backup", "restore", &foreign.to_string_lossy()]), "restore");
    assert!(restored.success, "{}", restored.combined());
    let started = Instant::now();
    let on_trial = lab.check(
        wait::until("the restore on trial", TIMEOUT, || {
            Ok(restore_status(&lab).filter(|s| s["state"] == "on_trial" || s["state"] == "rolled_back"))
        }),
        "on trial",
    );
    println!("after the restart: {on_trial}");
    let rolled_back = lab.check(
        wait::until("the restore rolled back", Duration::from_secs(90), || {
            Ok(restore_status(&lab).filter(|s| s["state"] == "rolled_back"))
        }),
        "rolled back",
    );
    println!("rolled back after {:?}: {rolled_back}", started.elapsed());
    let reason = rolled_back["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("not healthy within 10 s") && reason.contains("internet/dns"), "{rolled_back}");
    let table = lab.check(router.rtrctl(&["backup", "status"]), "backup status");
    assert!(table.stdout.contains("rolled back"), "{}", table.stdout);
    // The tree from before the restore is back, byte for byte, and routerd serves with it.
    lab.check(wait::until("routerd with the previous tree", TIMEOUT, || Ok(router.status().ok())), "status");
    assert_eq!(fs::read(&settings).expect("read"), original_settings);
    assert!(!router.perm().join(".restore-previous").exists());
    let client = lab.check(lab.lan(1).start_dhcp_client(DhcpClientKind::Udhcpc { hostname: None }), "udhcpc");
    lab.check(client.wait_bound(TIMEOUT), "a DHCP lease after the rollback");
    client.stop();
    let answer = lab.check(
        wait::until("DNS answering", TIMEOUT, || {
            let answer = lab.lan(1).dig(&ROUTER_LAN_V4.to_string(), "www.example.org", "A")?;
            Ok((!answer.is_empty()).then_some(answer))
        }),
        "DNS",
    );
    assert_eq!(answer, ["203.0.113.80"], "the upstreams from before the restore answer");
}
