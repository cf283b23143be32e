//! System updates on the appliance, in qemu: a bundle goes to the other slot, the router switches to it by
//! kexec and keeps it once healthy; a bad one ends in the old slot by itself, with the reason. The updates use
//! `--force`: under software emulation a busy VM can miss a DNS check's 2 s, and the health gate before an
//! update is `rtrctl update`'s, tested with daemon updates.

use std::time::Duration;

use integration::{DhcpClientKind, Lab, LabOptions, wait};
use serde_json::Value;

const BOOT: Duration = Duration::from_secs(300);

fn rtrctl(lab: &Lab, args: &[&str]) -> integration::command::Output {
    lab.check(lab.lan(1).rtrctl_with_identity(&lab.router().identity(), args), "rtrctl")
}

fn update_status(lab: &Lab) -> Value {
    let output = rtrctl(lab, &["-o", "json", "update", "status"]);
    assert!(output.success, "{}", output.combined());
    serde_json::from_str(&output.stdout).expect("JSON")
}

/// The appliance running system "first", serving lan1.
fn appliance(lab: &Lab) -> integration::appliance::Vm {
    let vm = lab.check(lab.boot_appliance(), "the appliance");
    let client =
        lab.check(lab.lan(1).start_dhcp_client(DhcpClientKind::Udhcpc { hostname: Some("laptop".into()) }), "udhcpc");
    client.wait_bound(BOOT).unwrap_or_else(|e| lab.fail(&format!("no lease: {e}\n{}", vm.console_text())));
    let status = update_status(lab);
    assert!(status["running_version"].as_str().is_some_and(|v| v.ends_with("(system first)")), "{status}");
    vm
}

/// The LAN device resolves a name through the router again (a router that just booted may answer SERVFAIL for
/// its first seconds, until its upstream is reachable).
fn assert_lan_served(lab: &Lab) {
    lab.check(
        wait::until("the LAN device resolving through the router", Duration::from_secs(60), || {
            Ok(lab.lan(1).dig("192.0.2.1", "www.example.org", "A").ok().filter(|a| a == &["203.0.113.80"]))
        }),
        "name resolution on the LAN",
    );
}

fn bundle(lab: &Lab, name: &str, routerd: Option<&std::path::Path>) -> std::path::PathBuf {
    signed_bundle(lab, name, name, routerd, None)
}

/// A bundle of system `version` in `file`.rbundle, signed with the private key `key` when given.
fn signed_bundle(
    lab: &Lab,
    file: &str,
    version: &str,
    routerd: Option<&std::path::Path>,
    key: Option<&std::path::Path>,
) -> std::path::PathBuf {
    let out = lab.work_dir().join(format!("{file}.rbundle"));
    lab.check(integration::appliance::build_bundle(&out, version, routerd, key), "routerd-image bundle");
    out
}

/// Makes a key pair named `name` in the lab's directory; returns the private key's path and the public key.
fn signing_key(lab: &Lab, name: &str) -> (std::path::PathBuf, String) {
    let path = lab.work_dir().join(name);
    let public = lab.check(integration::appliance::signing_key(&path), "routerd-image keygen");
    (path, public)
}

/// Adds `public` to `update_signing_keys` in the routerd.json the appliance's image is built from.
fn require_signatures(lab: &Lab, public: &str) {
    let path = lab.router().perm().join("routerd.json");
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("routerd.json")).expect("JSON");
    config["update_signing_keys"] = serde_json::json!([public]);
    std::fs::write(&path, config.to_string()).expect("routerd.json");
}

/// Uploads each bundle and checks that the router refuses it with the expected words, stages nothing and writes
/// no slot.
fn assert_refused(lab: &Lab, vm: &integration::appliance::Vm, bundles: &[(&std::path::Path, &str)]) {
    let before = vm.console_text().len();
    for (path, expected) in bundles {
        let refused = rtrctl(lab, &["update", "--image", &path.display().to_string(), "--no-backup", "--force"]);
        assert!(!refused.success && refused.combined().contains(expected), "{path:?}: {}", refused.combined());
    }
    let status = update_status(lab);
    assert_eq!(status["staged_version"], "", "{status}");
    assert!(!vm.console_text()[before..].contains("writing slot"), "a refused bundle was written");
}

/// Waits until rtrctl reaches the router again and the update status satisfies `done`.
fn wait_for_status(lab: &Lab, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    lab.check(
        wait::until(what, BOOT, || {
            let output =
                lab.lan(1).rtrctl_with_identity(&lab.router().identity(), &["-o", "json", "update", "status"])?;
            Ok(serde_json::from_str::<Value>(&output.stdout).ok().filter(|s| output.success && done(s)))
        }),
        what,
    )
}

#[test]
fn a_good_bundle_becomes_the_system_survives_a_reboot_and_rolls_back_on_request() {
    let lab = Lab::start(LabOptions { appliance: true, lan_devices: 1, ..LabOptions::default() }).expect("the lab");
    // This router takes only bundles signed by its owner's key.
    let (owner_key, owner_public) = signing_key(&lab, "owner.key");
    let (stranger_key, _) = signing_key(&lab, "stranger.key");
    require_signatures(&lab, &owner_public);
    let vm = appliance(&lab);
    let next = signed_bundle(&lab, "second", "second", None, Some(&owner_key));
    let foreign = signed_bundle(&lab, "foreign", "second", None, Some(&stranger_key));
    // The owner's bundle without its signature (the manifest.sig entry left out).
    let unsigned = rebuilt(&lab, &next, "unsigned", "vmlinuz", |_, _| {});
    assert_refused(&lab, &vm, &[(&unsigned, "not signed"), (&foreign, "does not verify with any key in routerd.json")]);
    let before = vm.console_text().len();
    let update = rtrctl(
        &lab,
        &["update", "--image", &next.display().to_string(), "--no-backup", "--force", "--confirm-window", "180"],
    );
    assert!(update.success, "{}\n── console:\n{}", update.combined(), &vm.console_text()[before..]);
    // init notices the confirmation within seconds and stops the watchdog.
    lab.check(vm.wait_for_console("the system update is confirmed", before, BOOT), "init told of the confirmation");
    let console = vm.console_text();
    let after = &console[before..];
    for line in [
        "switching to the new system (kexec)",
        "routerd.slot=b",
        "system update on trial",
        "system update second confirmed",
    ] {
        assert!(after.contains(line), "{line:?} missing:\n{after}");
    }
    let status = update_status(&lab);
    assert!(status["running_version"].as_str().is_some_and(|v| v.ends_with("(system second)")), "{status}");
    assert_eq!(status["previous_version"], "first");
    // The LAN device is still served.
    assert_lan_served(&lab);

    // A reboot boots the new slot: it is the default now.
    let before = vm.console_text().len();
    assert!(rtrctl(&lab, &["reboot", "--yes"]).success);
    lab.check(vm.wait_for_console("init: root slot b is /dev/sda3", before, BOOT), "slot b after the reboot");
    wait_for_status(&lab, "the new system after a reboot", |s| {
        s["running_version"].as_str().is_some_and(|v| v.ends_with("(system second)"))
    });

    // Back to the first system on request.
    let before = vm.console_text().len();
    assert!(rtrctl(&lab, &["update", "rollback"]).success);
    lab.check(vm.wait_for_console("init: root slot a is /dev/sda2", before, BOOT), "slot a after the rollback");
    let status = wait_for_status(&lab, "the first system again", |s| {
        s["running_version"].as_str().is_some_and(|v| v.ends_with("(system first)"))
    });
    assert!(status["last_rollback_reason"].as_str().is_some_and(|r| r.contains("on request")), "{status}");
}

#[test]
fn a_system_whose_routerd_exits_is_rolled_back_by_itself_with_the_reason() {
    let lab = Lab::start(LabOptions { appliance: true, lan_devices: 1, ..LabOptions::default() }).expect("the lab");
    let vm = appliance(&lab);
    // routerd-init as "routerd": not PID 1, so it exits at once with code 2.
    let init = integration::programs::OwnBinary { name: "routerd-init", package: "routerd-init" };
    let broken = bundle(&lab, "broken", Some(&lab.check(init.locate(), "routerd-init")));

    // Damaged bundles are refused after the upload, before anything is written: one byte of the root changed,
    // and one cut short.
    let bytes = std::fs::read(&broken).expect("the bundle");
    let mut tampered = bytes.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0xff;
    let tampered_path = lab.work_dir().join("tampered.rbundle");
    std::fs::write(&tampered_path, &tampered).expect("write");
    let truncated_path = lab.work_dir().join("truncated.rbundle");
    std::fs::write(&truncated_path, &bytes[..bytes.len() / 3]).expect("write");
    assert_refused(&lab, &vm, &[(&tampered_path, "SHA-256"), (&truncated_path, "nothing was staged")]);

    let before = vm.console_text().len();
    let update = rtrctl(
        &lab,
        &["update", "--image", &broken.display().to_string(), "--no-backup", "--force", "--confirm-window", "120"],
    );
    let after = vm.console_text()[before..].to_string();
    assert!(!update.success, "the update must fail: {}\n{after}", update.combined());
    assert!(after.contains("abandoning the system update: routerd ended (exit code 2)"), "{after}");
    let status = wait_for_status(&lab, "the rollback recorded", |s| s["phase"] == "rolled_back");
    assert!(status["running_version"].as_str().is_some_and(|v| v.ends_with("(system first)")), "{status}");
    assert!(status["last_rollback_reason"].as_str().is_some_and(|r| r.contains("exit code 2")), "{status}");
    // And the LAN is served again.
    assert_lan_served(&lab);

    // A kernel that panics (its initramfs is junk, so it finds no root): panic=10 restarts the machine, which
    // boots the old slot, still the default; routerd there finds the trial unfinished.
    let panicking = with_junk_initramfs(&lab, &broken);
    let before = vm.console_text().len();
    let update = rtrctl(
        &lab,
        &["update", "--image", &panicking.display().to_string(), "--no-backup", "--force", "--confirm-window", "120"],
    );
    let after = vm.console_text()[before..].to_string();
    assert!(!update.success, "the update must fail: {}\n{after}", update.combined());
    assert!(after.contains("Kernel panic"), "no panic on the console:\n{after}");
    let status = wait_for_status(&lab, "the rollback after the panic", |s| {
        s["last_rollback_reason"].as_str().is_some_and(|r| r.contains("reset before it confirmed"))
    });
    assert!(status["running_version"].as_str().is_some_and(|v| v.ends_with("(system first)")), "{status}");
    assert_lan_served(&lab);
}

/// A copy of `bundle` whose initramfs is junk (the manifest says so truthfully: it passes every check).
fn with_junk_initramfs(lab: &Lab, bundle: &std::path::Path) -> std::path::PathBuf {
    rebuilt(lab, bundle, "panicking", "initrd", |dir, _| {
        std::fs::write(dir.join("initrd"), b"not an initramfs\n".repeat(64)).expect("initrd");
    })
}

/// Rebuilds `bundle` as version `version` after `change` (given the unpacked directory and a way to run a
/// program there) rewrote its part `part`; the manifest gets that part's true size and hash. The result is
/// unsigned.
fn rebuilt(
    lab: &Lab,
    bundle: &std::path::Path,
    version: &str,
    part: &str,
    change: impl FnOnce(&std::path::Path, &dyn Fn(&str, &[&str]) -> String),
) -> std::path::PathBuf {
    let dir = lab.work_dir().join(version);
    std::fs::create_dir_all(&dir).expect("dir");
    let run = |program: &str, args: &[&str]| {
        let mut command = std::process::Command::new(program);
        command.args(args).current_dir(&dir);
        let output = lab.check(integration::command::run_unchecked(&mut command), program);
        assert!(output.success, "{program} {args:?}: {}", output.combined());
        output.stdout
    };
    run("tar", &["-xf", &bundle.display().to_string()]);
    change(&dir, &run);
    let size = std::fs::metadata(dir.join(part)).expect(part).len();
    let sha256 = run("sha256sum", &[part]).split_whitespace().next().unwrap_or_default().to_string();
    let mut manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).expect("manifest")).expect("JSON");
    manifest["version"] = version.into();
    manifest["parts"][part] = serde_json::json!({ "size": size, "sha256": sha256 });
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).expect("manifest");
    let out = lab.work_dir().join(format!("{version}.rbundle"));
    run("tar", &["-cf", &out.display().to_string(), "manifest.json", "vmlinuz", "initrd", "root.squashfs"]);
    out
}

#[test]
fn a_system_that_never_becomes_healthy_or_hangs_is_rolled_back_by_itself() {
    let lab = Lab::start(LabOptions { appliance: true, lan_devices: 1, ..LabOptions::default() }).expect("the lab");
    let vm = appliance(&lab);
    // A root without nf_tables: routerd runs, but its firewall never loads, so a check that passed before fails.
    let good = bundle(&lab, "unhealthy", None);
    let unhealthy = without_nf_tables(&lab, &good);
    let before = vm.console_text().len();
    let update = rtrctl(
        &lab,
        &["update", "--image", &unhealthy.display().to_string(), "--no-backup", "--force", "--confirm-window", "60"],
    );
    let after = vm.console_text()[before..].to_string();
    assert!(!update.success, "the update must fail: {}\n{after}", update.combined());
    assert!(after.contains("system update on trial"), "{after}");
    let status = wait_for_status(&lab, "the rollback after the window", |s| s["phase"] == "rolled_back");
    let reason = status["last_rollback_reason"].as_str().unwrap_or_default().to_string();
    assert!(reason.contains("not healthy within 60 s") && reason.contains("firewall"), "{status}");
    assert!(status["running_version"].as_str().is_some_and(|v| v.ends_with("(system first)")), "{status}");
    assert_lan_served(&lab);

    // A root whose init hangs: nothing feeds the watchdog the old system armed before the kexec, so it resets
    // the machine, which boots the old slot, still the default.
    let hanging = with_hanging_init(&lab, &good);
    let before = vm.console_text().len();
    let update = rtrctl(
        &lab,
        &["update", "--image", &hanging.display().to_string(), "--no-backup", "--force", "--confirm-window", "60"],
    );
    assert!(!update.success, "the update must fail: {}", update.combined());
    let status = wait_for_status(&lab, "the rollback after the hang", |s| {
        s["last_rollback_reason"].as_str().is_some_and(|r| r.contains("reset before it confirmed"))
    });
    let after = vm.console_text()[before..].to_string();
    let hung = after.find(HANG_LINE).unwrap_or_else(|| panic!("the new init did not run:\n{after}"));
    assert!(after[hung..].contains("init: root slot a is /dev/sda2"), "not back in slot a:\n{after}");
    assert!(status["running_version"].as_str().is_some_and(|v| v.ends_with("(system first)")), "{status}");
    assert_lan_served(&lab);
}

const HANG_LINE: &str = "test: this init hangs and feeds no watchdog";

/// A copy of `bundle` whose root's init is a shell script (busybox from this machine, with its libraries) that
/// sleeps forever.
fn with_hanging_init(lab: &Lab, bundle: &std::path::Path) -> std::path::PathBuf {
    rebuilt(lab, bundle, "hanging", "root.squashfs", |dir, run| {
        run("unsquashfs", &["-q", "-d", "root", "root.squashfs"]);
        let libraries = run("ldd", &["/bin/busybox"]);
        for library in libraries.split_whitespace().filter(|word| word.starts_with('/')) {
            let inside = dir.join("root").join(library.trim_start_matches('/'));
            if !inside.exists() {
                std::fs::create_dir_all(inside.parent().expect("a directory")).expect("library directory");
                std::fs::copy(library, &inside).expect("library");
            }
        }
        std::fs::copy("/bin/busybox", dir.join("root/sbin/busybox")).expect("busybox");
        let init = dir.join("root/sbin/init");
        std::fs::remove_file(&init).expect("the old init");
        let script = format!(
            "#!/sbin/busybox sh\necho '{HANG_LINE}' > /dev/console\nwhile :; do /sbin/busybox sleep 3600; done\n"
        );
        std::fs::write(&init, script).expect("init");
        run("chmod", &["755", &init.display().to_string()]);
        std::fs::remove_file(dir.join("root.squashfs")).expect("old root");
        run(
            "mksquashfs",
            &["root", "root.squashfs", "-comp", "zstd", "-noappend", "-all-root", "-quiet", "-no-progress"],
        );
    })
}

/// A copy of `bundle` whose root has no nf_tables module (the manifest says so truthfully).
fn without_nf_tables(lab: &Lab, bundle: &std::path::Path) -> std::path::PathBuf {
    rebuilt(lab, bundle, "unhealthy", "root.squashfs", |dir, run| {
        run("unsquashfs", &["-q", "-d", "root", "root.squashfs"]);
        let load = dir.join("root/etc/modules.load");
        let kept: Vec<String> = std::fs::read_to_string(&load)
            .expect("modules.load")
            .lines()
            .filter(|l| !l.ends_with("/nf_tables.ko"))
            .map(str::to_string)
            .collect();
        std::fs::write(&load, kept.join("\n") + "\n").expect("modules.load");
        std::fs::remove_file(dir.join("root.squashfs")).expect("old root");
        run(
            "mksquashfs",
            &["root", "root.squashfs", "-comp", "zstd", "-noappend", "-all-root", "-quiet", "-no-progress"],
        );
    })
}
