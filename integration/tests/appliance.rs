//! The appliance: the disk image `routerd-image` builds, booted from its AHCI disk in qemu (software emulation)
//! with e1000 NICs on the lab's ISP and LAN, serves a real LAN device, answers rtrctl over mTLS with the identity
//! issued into `--perm` before the build, and comes back after `rtrctl reboot` with its saved uplink lease.

use std::time::Duration;

use integration::{
    DhcpClientKind, Lab, LabOptions,
    addresses::{INTERNET_HOST_V4, INTERNET_HOST_V6, INTERNET_NAMES},
    clients, wait,
};
use serde_json::Value;

/// Under software emulation a boot takes about a minute; a loaded CI machine, more.
const BOOT: Duration = Duration::from_secs(300);
const STEP: Duration = Duration::from_secs(60);

fn rtrctl(lab: &Lab, args: &[&str]) -> integration::command::Output {
    let output = lab.check(lab.lan(1).rtrctl_with_identity(&lab.router().identity(), args), "rtrctl");
    assert!(output.success, "rtrctl {args:?}: {}", output.combined());
    output
}

fn status(lab: &Lab) -> Value {
    serde_json::from_str(&rtrctl(lab, &["-o", "json", "status"]).stdout).expect("status JSON")
}

#[test]
fn the_appliance_boots_from_its_disk_serves_the_lan_and_comes_back_after_a_reboot() {
    let lab = Lab::start(LabOptions { appliance: true, ..LabOptions::default() }).expect("the lab starts");
    let vm = lab.check(lab.boot_appliance(), "building and booting the appliance");
    let powered_on = std::time::Instant::now();
    let fail =
        |what: &str| -> ! { lab.fail(&format!("{what}\n── the appliance's console:\n{}", vm.console_text())) };
    vm.wait_for_console("serving gRPC with mutual TLS on 192.0.2.1", 0, BOOT)
        .unwrap_or_else(|e| fail(&format!("routerd does not serve: {e}")));
    let serving = powered_on.elapsed();

    // A LAN device gets its lease from routerd in the VM (the first DISCOVERs go out while it still boots).
    let client =
        lab.check(lab.lan(1).start_dhcp_client(DhcpClientKind::Udhcpc { hostname: Some("laptop".into()) }), "udhcpc");
    let lease = client.wait_bound(BOOT).unwrap_or_else(|e| fail(&format!("no LAN lease: {e}")));
    let address = lease.get("ip").unwrap_or_default().to_string();
    println!(
        "power-on to routerd serving the API on the LAN: {:.1} s; to the LAN device's lease: {:.1} s",
        serving.as_secs_f64(),
        powered_on.elapsed().as_secs_f64()
    );
    assert!(address.starts_with("192.0.2."), "{lease:?}");
    let booted = vm.console_text();
    for line in ["init: root slot a is /dev/sda2", "init: e2fsck: /dev/sda4 is clean", "init: started routerd"] {
        assert!(booted.contains(line), "{line:?} missing from the console:\n{booted}");
    }

    // rtrctl over mTLS with the identity issued before the build: the uplink has its lease and its prefix.
    let uplink = lab.check(
        wait::until("the uplink's lease and prefix", STEP, || {
            let status = status(&lab);
            let ready = status["uplink"]["dhcp4"]["addr"].as_str().is_some_and(|a| a.starts_with("198.51.100."))
                && status["uplink"]["dhcp6"]["prefixes"].as_array().is_some_and(|p| !p.is_empty());
            Ok(ready.then_some(status["uplink"].clone()))
        }),
        "uplink",
    );
    let prefix = uplink["dhcp6"]["prefixes"][0].as_str().unwrap_or_default().trim_end_matches("::/56").to_string();

    // The device resolves a name through the appliance and reaches the internet host over IPv4 (NAT) and IPv6.
    let answer = lab.check(lab.lan(1).dig("192.0.2.1", INTERNET_NAMES[0], "A"), "dig through the appliance");
    assert_eq!(answer, ["203.0.113.80"]);
    let seen = lab.check(clients::curl(lab.lan(1).netns(), &format!("http://{INTERNET_HOST_V4}/")), "curl (IPv4)");
    let uplink_v4 = uplink["dhcp4"]["addr"].as_str().unwrap_or_default().split('/').next().unwrap_or_default();
    assert_eq!(seen.trim(), format!("client={uplink_v4}"));
    let slaac = lab.check(
        wait::until("a SLAAC address from the appliance's adverts", STEP, || {
            Ok(lab.lan(1).global_ipv6_addresses()?.into_iter().find(|a| a.starts_with(&prefix)))
        }),
        "SLAAC",
    );
    let seen6 = lab.check(
        wait::until("IPv6 to the internet host", STEP, || {
            Ok(clients::curl(lab.lan(1).netns(), &format!("http://[{INTERNET_HOST_V6}]/")).ok())
        }),
        "curl (IPv6)",
    );
    assert_eq!(seen6.trim(), format!("client={slaac}"));

    // The clock: the RTC said 2020; the floor the image carries (its build time) moved it forward at once (so
    // the identity issued before the build was valid), then the ISP's NTP server set it.
    assert!(booted.contains("the clock was behind the last time it was known good: set forward"), "{booted}");
    let clock = lab.check(
        wait::until("the clock set from the ISP's NTP server", STEP, || {
            let status = status(&lab);
            Ok((status["clock"]["state"] == "synchronized").then(|| status["clock"].clone()))
        }),
        "clock",
    );
    assert_eq!(clock["sets_system_clock"], true, "{clock}");
    let router_now = clock["now"].as_str().unwrap_or_default().to_string();
    let host_now = time::OffsetDateTime::now_utc();
    let router_now = time::OffsetDateTime::parse(&router_now, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| fail(&format!("the router's time {router_now:?}: {e}")));
    assert!((host_now - router_now).whole_seconds().abs() < 120, "router {router_now}, host {host_now}: {clock}");

    // Diagnostics and a backup over the same identity.
    let diag = rtrctl(&lab, &["diag"]);
    assert!(diag.stdout.contains("✔"), "{}", diag.stdout);
    let backup = lab.work_dir().join("appliance-backup.tar.gz");
    rtrctl(&lab, &["backup", "create", &backup.display().to_string()]);
    assert!(std::fs::metadata(&backup).is_ok_and(|m| m.len() > 0), "no backup written");

    // A restart through the API: init stops routerd, unmounts /perm and the machine boots again.
    let before_reboot = vm.console_text().len();
    rtrctl(&lab, &["reboot", "--yes"]);
    lab.check(vm.wait_for_console("init: unmounting /perm and restarting", before_reboot, STEP), "a clean shutdown");
    let second_boot = lab.check(vm.wait_for_console("init: started routerd", before_reboot, BOOT), "the second boot");
    let applied = lab.check(
        vm.wait_for_console("applying the saved DHCPv4 lease", second_boot, STEP),
        "the saved uplink lease applied",
    );
    let asked = lab.check(
        vm.wait_for_console("asking to keep the saved address (INIT-REBOOT)", second_boot, STEP),
        "INIT-REBOOT with the saved address",
    );
    assert!(applied < asked, "the saved lease must be applied before the ISP is asked");
    let text = vm.console_text();
    let rebooted = &text[before_reboot..second_boot];
    assert!(rebooted.contains("init: e2fsck: /dev/sda4 is clean"), "/perm was not unmounted cleanly:\n{rebooted}");
    // The hardware clock was written: the kernel reads today's date from it at boot, not 2020's.
    let rtc =
        rebooted.lines().find(|l| l.contains("rtc_cmos") && l.contains("setting system clock")).unwrap_or_default();
    let seconds: i64 = rtc.rsplit('(').next().and_then(|s| s.trim_end_matches(')').trim().parse().ok()).unwrap_or(0);
    assert!((time::OffsetDateTime::now_utc().unix_timestamp() - seconds).abs() < 600, "{rtc:?}");
    // The device renews and keeps its address.
    lab.check(
        wait::until("the appliance's API after the reboot", BOOT, || {
            Ok(lab.lan(1).rtrctl_with_identity(&lab.router().identity(), &["status"])?.success.then_some(()))
        }),
        "rtrctl status after the reboot",
    );
    let leases: Vec<Value> =
        serde_json::from_str(&rtrctl(&lab, &["-o", "json", "leases", "list"]).stdout).expect("leases JSON");
    assert!(
        leases.iter().any(|l| l["addr"] == address.as_str() && l["hostname"] == "laptop"),
        "the device's lease did not survive the reboot: {leases:?}"
    );
    // A new client (INIT-REBOOT asks for the address it had); the first one stops first, so that only one
    // configures the interface.
    client.stop();
    let renewed = lab.check(
        lab.lan(1).start_dhcp_client(DhcpClientKind::Udhcpc { hostname: Some("laptop".into()) }),
        "udhcpc again",
    );
    let again = renewed.wait_bound(STEP).unwrap_or_else(|e| fail(&format!("no lease after the reboot: {e}")));
    assert_eq!(again.get("ip"), Some(address.as_str()), "the device keeps its address");

    // Power-off: routerd stops, /perm is unmounted, the machine goes off (qemu exits).
    let before_off = vm.console_text().len();
    rtrctl(&lab, &["poweroff", "--yes"]);
    lab.check(
        wait::until("qemu to exit after the power-off", STEP, || Ok(lab.tracker().exit_status(vm.pid))),
        "power-off",
    );
    let off = &vm.console_text()[before_off..];
    assert!(off.contains("init: unmounting /perm and powering off"), "{off}");
}

#[test]
fn a_damaged_perm_is_repaired_at_boot_not_recreated() {
    let lab = Lab::start(LabOptions { appliance: true, lan_devices: 1, ..LabOptions::default() }).expect("the lab");
    let image = lab.check(lab.build_appliance_image(), "building the image");
    // Damage /perm as a failing disk or a power cut in the middle of a write can.
    let perm = integration::appliance::perm_partition(&image);
    let debugfs = |request: &str| {
        let mut command = std::process::Command::new("debugfs");
        command.args(["-w", "-R", request, &perm]);
        lab.check(integration::command::run_unchecked(&mut command), "debugfs")
    };
    // The inode of routerd.json is cleared, so its directory entry points at nothing, and the file system is
    // marked as having errors (as the kernel marks it when it meets such damage).
    for request in ["clri /routerd.json", "ssv state 2"] {
        let damaged = debugfs(request);
        assert!(damaged.success, "{request}: {}", damaged.combined());
    }
    let vm = lab.check(integration::appliance::Vm::boot_image(&lab, &image), "booting the damaged image");
    let fail = |what: &str| -> ! { lab.fail(&format!("{what}\n── console:\n{}", vm.console_text())) };
    vm.wait_for_console("init: started routerd", 0, BOOT).unwrap_or_else(|e| fail(&e.to_string()));
    let console = vm.console_text();
    assert!(console.contains("repaired /dev/sda4"), "no repair reported:\n{console}");
    // The rest of /perm is still there: interfaces.json configures the LAN, and the device gets a lease.
    let client = lab.check(lab.lan(1).start_dhcp_client(DhcpClientKind::Udhcpc { hostname: None }), "udhcpc");
    client.wait_bound(STEP).unwrap_or_else(|e| fail(&format!("no lease after the repair: {e}")));
    assert!(!console.contains("created the router's certificate authority"), "the CA was re-created:\n{console}");
}
