//! Backups and safe updates against the lab: a backup restores to the identical tree, bad archives change
//! nothing, a working binary is taken, and binaries that exit at once or never become healthy are rolled back
//! by the router itself, with DHCP and DNS serving afterwards.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use integration::{DhcpClientKind, Lab, LabOptions, addresses::ROUTER_LAN_V4, wait};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(60);

/// Every file under `--perm` that backups cover (not dot files, not update/), with its contents.
fn tree(perm: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut dirs = vec![PathBuf::new()];
    while let Some(relative) = dirs.pop() {
        for entry in fs::read_dir(perm.join(&relative)).expect("read_dir").flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = relative.join(&name);
            if name.starts_with('.') || path == Path::new("update") {
                continue;
            }
            if entry.file_type().expect("type").is_dir() {
                dirs.push(path);
            } else {
                files.insert(path.display().to_string(), fs::read(entry.path()).expect("read"));
            }
        }
    }
    files
}

/// DHCP and DNS work: a fresh lease on lan1 and an answer for a name.
fn dhcp_and_dns_serve(lab: &Lab, hostname: &str) {
    let client =
        lab.check(lab.lan(1).start_dhcp_client(DhcpClientKind::Udhcpc { hostname: Some(hostname.into()) }), "udhcpc");
    lab.check(client.wait_bound(TIMEOUT), "a DHCP lease");
    client.stop();
    let answer = lab.check(
        wait::until("DNS answering", Duration::from_secs(10), || {
            let answer = lab.lan(1).dig(&ROUTER_LAN_V4.to_string(), "www.example.org", "A")?;
            Ok((!answer.is_empty()).then_some(answer))
        }),
        "DNS",
    );
    assert_eq!(answer, ["203.0.113.80"]);
}

/// A tar.gz made by Python's tarfile with the given (name, contents): how an attacker would craft one.
fn crafted_archive(path: &Path, entries: &[(&str, &str)]) {
    let members: Vec<String> = entries.iter().map(|(name, data)| format!("({name:?}, {data:?})")).collect();
    let script = format!(
        "import io, tarfile\nwith tarfile.open({:?}, 'w:gz') as t:\n    for name, data in [{}]:\n        \
         info = tarfile.TarInfo(name); b = data.encode(); info.size = len(b); t.addfile(info, io.BytesIO(b))\n",
        path.display().to_string(),
        members.join(", ")
    );
    let status = Command::new("/usr/bin/python3").args(["-c", &script]).status().expect("python3");
    assert!(status.success());
}

#[test]
fn a_backup_restores_to_the_identical_tree_and_bad_archives_change_nothing() {
    let lab = Lab::start(LabOptions::default()).expect("the lab starts");
    lab.check(lab.router().wait_for_uplink_address(TIMEOUT), "uplink lease");
    let client =
        lab.check(lab.lan(2).start_dhcp_client(DhcpClientKind::Udhcpc { hostname: Some("lan2".into()) }), "udhcpc");
    lab.check(client.wait_bound(TIMEOUT), "lan2's lease");
    let perm = lab.router().perm();
    let backup = lab.work_dir().join("backup.tar.gz");
    let created =
        lab.check(lab.router().rtrctl(&["-o", "json", "backup", "create", &backup.to_string_lossy()]), "backup");
    assert!(created.success, "{}", created.combined());
    // As the backup found it (it had the DHCP server bring leases.json up to date first).
    let before = tree(&perm);
    let doc: Value = serde_json::from_str(&created.stdout).expect("backup JSON");
    let listing = Command::new("tar").args(["-tzf", &backup.to_string_lossy()]).output().expect("tar");
    let mut listed: Vec<String> = String::from_utf8_lossy(&listing.stdout).lines().map(String::from).collect();
    listed.sort();
    assert!(listed.contains(&"dhcp4d/leases.json".to_string()), "{listed:?}");
    assert_eq!(listed, before.keys().cloned().collect::<Vec<_>>(), "the backup holds the whole tree");
    assert_eq!(doc["files"], before.len());
    let leases = String::from_utf8_lossy(&before["dhcp4d/leases.json"]).into_owned();
    assert!(leases.contains("lan2"), "{leases}");

    // Changes after the backup: a static lease, a new file.
    let added = lab.router().rtrctl(&["leases", "static", "add", "02:00:00:00:09:09", "192.0.2.99"]);
    assert!(lab.check(added, "static lease").success);
    fs::write(perm.join("later.json"), "{}").expect("write");
    assert_ne!(tree(&perm), before);

    // Bad archives: each refused, naming the problem, with nothing changed and routerd running.
    let changed = tree(&perm);
    let bad = lab.work_dir().join("bad.tar.gz");
    let mut tampered = fs::read(&backup).expect("read");
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0xff;
    for (what, expected) in [("path traversal", "outside --perm"), ("bad JSON", "not valid JSON"), ("tampered", "gzip")]
    {
        match what {
            "path traversal" => crafted_archive(&bad, &[("routerd.json", "{}"), ("../../escaped.json", "{}")]),
            "bad JSON" => crafted_archive(&bad, &[("interfaces.json", "{\"interfaces\": [")]),
            _ => fs::write(&bad, &tampered).expect("write"),
        }
        let refused = lab.check(lab.router().rtrctl(&["backup", "restore", &bad.to_string_lossy()]), what);
        assert!(!refused.success, "{what} was accepted");
        assert!(
            refused.stderr.to_lowercase().contains(&expected.to_lowercase())
                && refused.stderr.contains("nothing changed"),
            "{what}: {}",
            refused.stderr
        );
        assert_eq!(tree(&perm), changed, "{what} changed something");
        assert!(!perm.parent().unwrap_or(&perm).join("escaped.json").exists());
        assert!(lab.router().routerd_running());
    }

    // The real one: routerd starts again, swaps the files in first, and runs with them.
    let restored =
        lab.check(lab.router().rtrctl(&["-o", "json", "backup", "restore", &backup.to_string_lossy()]), "restore");
    assert!(restored.success, "{}", restored.combined());
    let doc: Value = serde_json::from_str(&restored.stdout).expect("restore JSON");
    assert_eq!(doc["restarting"], true);
    // The new daemon swaps the files in first (and says so), then serves.
    lab.check(
        wait::until("routerd started again", TIMEOUT, || {
            let swapped = lab.router().routerd_log().contains("finished a restore");
            Ok((swapped && lab.router().status().is_ok()).then_some(()))
        }),
        "restart",
    );
    // Identical, except what the fresh start rewrites on purpose: the uplink's leases (it asks the ISP again) and
    // the server certificate (it names the addresses the router has now, the LAN's IPv6 one included).
    let rewritten_at_start = |path: &str| path.contains("/wire/") || path.starts_with("tls/server.");
    let now = tree(&perm);
    assert_eq!(now.keys().collect::<Vec<_>>(), before.keys().collect::<Vec<_>>(), "the same files");
    let differing: Vec<&String> =
        before.iter().filter(|(path, contents)| now.get(*path) != Some(contents)).map(|(path, _)| path).collect();
    assert!(differing.iter().all(|p| rewritten_at_start(p)), "restored files differ from the backup: {differing:?}");
    assert!(
        lab.router()
            .routerd_log()
            .contains(&format!("finished a restore: {} files from the backup are in place", before.len()))
    );
    assert!(!perm.join("later.json").exists());
    let leases = lab.check(lab.router().rtrctl(&["-o", "json", "leases", "list"]), "leases");
    assert!(!leases.stdout.contains("192.0.2.99"), "the static lease added later is gone: {}", leases.stdout);
    assert!(leases.stdout.contains("lan2"), "{}", leases.stdout);
    dhcp_and_dns_serve(&lab, "after-restore");
}

/// `rtrctl -o json update --binary BINARY` with a confirm window, or the router's own (routerd.json).
fn update(lab: &Lab, binary: &Path, window: Option<u32>) -> (bool, Value, String) {
    let backup =
        lab.work_dir().join(format!("pre-update-{}.tar.gz", binary.file_name().unwrap_or_default().to_string_lossy()));
    let (binary, backup) = (binary.to_string_lossy().into_owned(), backup.to_string_lossy().into_owned());
    let window = window.map(|w| w.to_string());
    let mut args = vec!["-o", "json", "update", "--binary", &binary, "--backup", &backup];
    if let Some(window) = &window {
        args.extend(["--confirm-window", window]);
    }
    let output = lab.check(lab.router().rtrctl(&args), "rtrctl update");
    let doc = serde_json::from_str(&output.stdout).unwrap_or(Value::Null);
    (output.success, doc, output.combined())
}

fn executable(path: &Path, contents: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, contents).expect("write");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn updates_are_taken_when_healthy_and_rolled_back_when_not() {
    let lab = Lab::start(LabOptions::default()).expect("the lab starts");
    // The router's own confirm window, for updates that do not name one.
    let settings = lab.router().perm().join("routerd.json");
    let mut routerd_json: Value =
        serde_json::from_str(&fs::read_to_string(&settings).expect("routerd.json")).expect("JSON");
    routerd_json["update_confirm_window_seconds"] = 10.into();
    fs::write(&settings, routerd_json.to_string()).expect("write");
    lab.router().stop_routerd();
    lab.check(lab.router().start_routerd(), "routerd with the new setting");
    lab.check(lab.router().wait_for_uplink_address(TIMEOUT), "uplink lease");
    lab.check(lab.router().wait_for_delegated_prefix(TIMEOUT), "prefix");
    lab.check(
        wait::until("a healthy router", TIMEOUT, || {
            Ok(lab.router().rtrctl(&["diag", "--health"])?.success.then_some(()))
        }),
        "healthy before the update",
    );
    let keeper = lab.router().routerd_pid();

    // A working binary: another build of this routerd as far as hashes go.
    let working = lab.work_dir().join("routerd-new");
    let (_, sha) = lab.check(lab.router().another_build(&working, "another build"), "another build");
    let (success, doc, text) = update(&lab, &working, Some(60));
    assert!(success, "{text}");
    assert_eq!(doc["outcome"], "updated", "{text}");
    let running = doc["running_version"].as_str().unwrap_or_default().to_string();
    assert!(running.ends_with(&format!("+sha256.{}", &sha[..12])), "{running}");
    assert_eq!(lab.router().status().expect("status")["version"], running.as_str());
    assert_eq!(lab.router().routerd_pid(), keeper, "the keeper stays; only the daemon under it changed");
    dhcp_and_dns_serve(&lab, "after-update");

    // A binary that exits at once.
    let quitter = lab.work_dir().join("routerd-exits");
    executable(&quitter, b"#!/bin/sh\necho 'routerd (broken build): exiting' >&2\nexit 3\n");
    let (success, doc, text) = update(&lab, &quitter, Some(60));
    assert!(!success, "{text}");
    assert_eq!(doc["outcome"], "rolled_back", "{text}");
    assert!(doc["reason"].as_str().unwrap_or_default().contains("exited"), "{text}");
    assert_eq!(doc["running_version"], running.as_str(), "back on the version that ran before: {text}");
    dhcp_and_dns_serve(&lab, "after-quitter");

    // A binary that runs but never becomes healthy (it never even answers).
    let sleeper = lab.work_dir().join("routerd-sleeps");
    executable(&sleeper, b"#!/bin/sh\nexec sleep 600\n");
    // No window in the request: routerd.json's `update_confirm_window_seconds` (10, set above) applies.
    let (success, doc, text) = update(&lab, &sleeper, None);
    assert!(!success, "{text}");
    assert_eq!(doc["outcome"], "rolled_back", "{text}");
    assert!(doc["reason"].as_str().unwrap_or_default().contains("did not report healthy within 10 s"), "{text}");
    assert_eq!(doc["running_version"], running.as_str(), "{text}");
    dhcp_and_dns_serve(&lab, "after-sleeper");

    let status = lab.check(lab.router().rtrctl(&["-o", "json", "update", "status"]), "update status");
    let status: Value = serde_json::from_str(&status.stdout).expect("status JSON");
    assert_eq!(status["phase"], "rolled_back", "{status}");
    // Staged binaries that nothing refers to any more are gone; the running one stays.
    let binaries: Vec<String> = fs::read_dir(lab.router().perm().join("update/bin"))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert!(binaries.contains(&format!("routerd-{}", &sha[..12])), "{binaries:?}");
}
