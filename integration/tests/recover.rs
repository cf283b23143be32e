//! Recovering a router over PXE: a VM with a blank disk boots from the network served by `routerd-recover` on a
//! workstation (a LAN device's namespace), installs a freshly built image, restores /perm from the old router's
//! backup, and comes back as the same router: its CA (the identity issued before the backup works at once),
//! its static lease and its port forward. Another device on that network gets no answer from routerd-recover.

use std::{path::Path, time::Duration};

use integration::{
    DhcpClientKind, Lab, LabOptions,
    addresses::lan_device_mac,
    appliance::{BootFrom, Vm, set_lan_cable},
    programs::ROUTERD_RECOVER,
    wait,
};
use serde_json::Value;

const BOOT: Duration = Duration::from_secs(300);
/// The network boot, the 1 GiB image through an emulated NIC, written and read back under software emulation.
const INSTALL: Duration = Duration::from_secs(1200);
const STATIC_LEASE: &str = "192.0.2.50";

fn rtrctl(lab: &Lab, args: &[&str]) -> integration::command::Output {
    let output = lab.check(lab.lan(1).rtrctl_with_identity(&lab.router().identity(), args), "rtrctl");
    assert!(output.success, "rtrctl {args:?}: {}", output.combined());
    output
}

/// An image of the lab's router without its identity: a new CA at first start, so only the backup can bring
/// the old one back.
fn fresh_image(lab: &Lab) -> std::path::PathBuf {
    let perm = lab.work_dir().join("fresh-perm");
    std::fs::create_dir_all(&perm).expect("fresh perm");
    for file in ["interfaces.json", "routerd.json"] {
        std::fs::copy(lab.router().perm().join(file), perm.join(file)).expect(file);
    }
    let image = lab.work_dir().join("fresh.img");
    lab.check(
        integration::appliance::build_image(&perm, &image, &lab.work_dir().join("fresh-build.log")),
        "the fresh image",
    );
    image
}

fn blank_disk(path: &Path, size: u64) {
    let file = std::fs::File::create(path).expect("blank disk");
    file.set_len(size).expect("blank disk size");
}

/// routerd-recover running on lan1 (the workstation, with a fixed address), logging to `log`.
struct Recover<'a> {
    lab: &'a Lab,
    pid: u32,
    log: std::path::PathBuf,
}

impl<'a> Recover<'a> {
    fn start(lab: &'a Lab, log: std::path::PathBuf, image: &Path, backup: Option<&Path>) -> Recover<'a> {
        let program = lab.check(ROUTERD_RECOVER.locate(), "routerd-recover");
        let mut args = vec!["--interface".to_string(), "eth0".into(), "--image".into(), image.display().to_string()];
        if let Some(backup) = backup {
            args.extend(["--backup".to_string(), backup.display().to_string()]);
        }
        let pid = lab.check(
            lab.tracker().spawn("routerd-recover", lab.lan(1).netns(), &program, &args, &[], &log),
            "routerd-recover",
        );
        let recover = Recover { lab, pid, log };
        lab.check(
            wait::until("routerd-recover serving", Duration::from_secs(120), || {
                if let Some(status) = lab.tracker().exit_status(pid) {
                    let said = recover.said();
                    return Err(integration::LabError::unexpected(
                        "routerd-recover",
                        format!("exited ({status}): {said}"),
                    ));
                }
                Ok(recover.said().contains("now boot the router").then_some(()))
            }),
            "routerd-recover serving",
        );
        recover
    }

    fn said(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until routerd-recover exits; returns its exit status and what it said.
    fn finished(&self, vm: &Vm) -> (String, String) {
        let status = self.lab.check(
            wait::until("routerd-recover to finish", INSTALL, || Ok(self.lab.tracker().exit_status(self.pid))),
            &format!("the install\n── routerd-recover:\n{}\n── console:\n{}", self.said(), vm.console_text()),
        );
        (status, self.said())
    }
}

/// lan1 as the workstation: no DHCP client, a fixed address.
fn workstation(lab: &Lab) {
    lab.check(lab.lan(1).netns().ip(&["addr", "flush", "dev", "eth0"]), "flush");
    lab.check(lab.lan(1).set_static_ipv4(), "a fixed address");
}

fn blank_router(lab: &Lab, dir: &Path, disk_size: u64) -> Vm {
    blank_disk(&dir.join("disk.img"), disk_size);
    lab.check(
        Vm::boot_from(&lab.tracker(), lab.router().netns(), &dir.join("disk.img"), dir, BootFrom::DiskThenNetwork),
        "the blank router",
    )
}

#[test]
fn a_blank_router_is_reinstalled_over_pxe_and_comes_back_with_its_identity_and_configuration() {
    let lab = Lab::start(LabOptions { appliance: true, lan_devices: 2, ..LabOptions::default() }).expect("the lab");
    let vm = lab.check(lab.boot_appliance(), "the appliance");
    let laptop = lab.check(lab.lan(1).start_dhcp_client(DhcpClientKind::Udhcpc { hostname: None }), "udhcpc");
    laptop.wait_bound(BOOT).unwrap_or_else(|e| lab.fail(&format!("no lease: {e}\n{}", vm.console_text())));

    // What the backup must bring back: a static lease for lan2 and a port forward to it.
    rtrctl(&lab, &["leases", "static", "add", &lan_device_mac(2), STATIC_LEASE, "--hostname", "nas"]);
    rtrctl(&lab, &["forwards", "add", "--port", "8081", "--dest-addr", STATIC_LEASE, "--dest-port", "80"]);
    let backup = lab.work_dir().join("backup.tar.gz");
    rtrctl(&lab, &["backup", "create", &backup.display().to_string()]);

    // The router dies; a new disk goes in.
    lab.tracker().stop(vm.pid);
    let image = fresh_image(&lab);
    let size = std::fs::metadata(&image).expect("image").len();
    let dir = lab.work_dir().join("recovered");
    std::fs::create_dir_all(&dir).expect("dir");

    // The workstation: lan1, with a fixed address, runs routerd-recover; lan2 asks for an address meanwhile.
    laptop.stop();
    workstation(&lab);
    let recover = Recover::start(&lab, dir.join("routerd-recover.log"), &image, Some(&backup));
    let other = lab.check(lab.lan(2).start_dhcp_client(DhcpClientKind::Udhcpc { hostname: None }), "udhcpc on lan2");
    let vm = blank_router(&lab, &dir, size);
    let (status, said) = recover.finished(&vm);
    assert!(status.contains("exit status: 0"), "routerd-recover: {status}\n{said}\n── console:\n{}", vm.console_text());
    assert!(said.contains("installed:") && said.contains("/perm restored from the backup"), "{said}");
    // lan2 is no PXE client: routerd-recover never answered it.
    assert!(said.contains("ignored a request that is not the router's network boot"), "{said}");
    assert!(other.events().iter().all(|e| e.name != "bound"), "routerd-recover answered lan2: {:?}", other.events());

    // The installed system boots from its disk and is the old router again.
    let console = vm.console_text();
    assert!(console.contains("the image is on sda and reads back intact"), "{console}");
    lab.check(vm.wait_for_console("init: started routerd", 0, BOOT), "the installed system");
    let lease = other.wait_bound(BOOT).unwrap_or_else(|e| lab.fail(&format!("lan2: {e}\n{}", vm.console_text())));
    assert_eq!(lease.get("ip"), Some(STATIC_LEASE), "the static lease from the backup: {lease:?}");
    let status: Value = lab.check(
        wait::until("rtrctl status with the identity issued before the backup", BOOT, || {
            let output = lab.lan(1).rtrctl_with_identity(&lab.router().identity(), &["-o", "json", "status"])?;
            Ok(output.success.then(|| serde_json::from_str(&output.stdout).ok()).flatten())
        }),
        "rtrctl status",
    );
    assert!(status["version"].is_string(), "{status}");
    let forwards = rtrctl(&lab, &["-o", "json", "forwards", "list"]).stdout;
    assert!(forwards.contains("8081") && forwards.contains(STATIC_LEASE), "{forwards}");
}

#[test]
fn a_disk_too_small_is_left_untouched_and_an_install_cut_by_a_pulled_cable_is_simply_run_again() {
    let lab = Lab::start(LabOptions { appliance: true, lan_devices: 1, ..LabOptions::default() }).expect("the lab");
    let image = lab.check(lab.build_appliance_image(), "the image");
    let size = std::fs::metadata(&image).expect("image").len();
    workstation(&lab);

    // A disk smaller than the image: refused before anything is written.
    let small = lab.work_dir().join("small");
    std::fs::create_dir_all(&small).expect("dir");
    let recover = Recover::start(&lab, small.join("routerd-recover.log"), &image, None);
    let vm = blank_router(&lab, &small, 512 << 20);
    let (status, said) = recover.finished(&vm);
    assert!(!status.contains("exit status: 0"), "{status}: {said}");
    assert!(said.contains("smaller than the image") && said.contains("nothing was written to the disk"), "{said}");
    lab.tracker().stop(vm.pid);
    let disk = std::fs::read(small.join("disk.img")).expect("the small disk");
    assert!(disk.iter().all(|b| *b == 0), "the small disk was written to");

    // The cable is pulled while the image is written: routerd-recover gives up; run again, the router (whose disk
    // no longer boots) comes back to the network boot by itself and the install completes.
    let cut = lab.work_dir().join("cut");
    std::fs::create_dir_all(&cut).expect("dir");
    let recover = Recover::start(&lab, cut.join("routerd-recover.log"), &image, None);
    let vm = blank_router(&lab, &cut, size);
    lab.check(
        wait::until("the image half written", INSTALL, || {
            Ok(vm.console_text().contains("[image] writing the image: 3").then_some(()))
        }),
        "the install under way",
    );
    lab.check(set_lan_cable(lab.router().netns(), false), "pulling the cable");
    let (status, said) = recover.finished(&vm);
    assert!(!status.contains("exit status: 0"), "{status}: {said}");
    assert!(said.contains("has not reported") && said.contains("run routerd-recover again"), "{said}");
    lab.check(set_lan_cable(lab.router().netns(), true), "plugging the cable back in");
    let before = vm.console_text().len();
    let again = Recover::start(&lab, cut.join("routerd-recover-again.log"), &image, None);
    let (status, said) = again.finished(&vm);
    assert!(status.contains("exit status: 0"), "{status}: {said}\n── console:\n{}", &vm.console_text()[before..]);
    lab.check(vm.wait_for_console("init: started routerd", before, BOOT), "the installed system");
}
