//! The router as an appliance in the lab: the disk image `routerd-image` builds from the lab's `--perm`, booted in
//! qemu (software emulation) inside the router namespace, its two e1000 NICs on tap devices bridged to the ISP's
//! link and to the LAN devices' bridge, on an AHCI disk as on the apu2.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    addresses::{LAN_BRIDGE_MAC, UPLINK_MAC},
    error::{IoContext, LabError},
    netns::Netns,
    programs::{QEMU, ROUTERD_IMAGE},
    router::{LAN, UPLINK},
    tracker::Tracker,
    wait,
};

/// The bridge in the router namespace that joins the ISP's link to the VM's uplink NIC.
const UPLINK_BRIDGE: &str = "up0";
const UPLINK_TAP: &str = "tapup";
const LAN_TAP: &str = "taplan";
/// The namespace's own ends take other MACs: the VM's NICs carry the ones interfaces.json names.
const NAMESPACE_UPLINK_MAC: &str = "02:00:00:00:00:f1";
const NAMESPACE_LAN_MAC: &str = "02:00:00:00:01:f0";
const NAMESPACE_UPLINK_BRIDGE_MAC: &str = "02:00:00:00:00:f2";

/// Turns the router namespace into a switch for the VM: `uplink0` (the ISP's link) and a tap on bridge `up0`, a
/// tap on the LAN bridge `lan0`, and no IPv6 of its own on any of them (the namespace takes no part).
pub fn wire(router: &Netns) -> Result<(), LabError> {
    router.ip(&["link", "set", UPLINK, "down"])?;
    router.ip(&["link", "set", UPLINK, "address", NAMESPACE_UPLINK_MAC])?;
    router.ip(&["link", "set", LAN, "address", NAMESPACE_LAN_MAC])?;
    crate::lab::add_switch(router, UPLINK_BRIDGE, NAMESPACE_UPLINK_BRIDGE_MAC)?;
    for (tap, bridge) in [(UPLINK_TAP, UPLINK_BRIDGE), (LAN_TAP, LAN)] {
        router.ip(&["tuntap", "add", "dev", tap, "mode", "tap"])?;
        router.ip(&["link", "set", tap, "master", bridge])?;
    }
    router.ip(&["link", "set", UPLINK, "master", UPLINK_BRIDGE])?;
    let quiet: Vec<String> = [UPLINK_BRIDGE, LAN, UPLINK, UPLINK_TAP, LAN_TAP]
        .iter()
        .map(|link| format!("net/ipv6/conf/{link}/disable_ipv6"))
        .collect();
    router.sysctl(&quiet.iter().map(|key| (key.as_str(), "1")).collect::<Vec<_>>())?;
    for link in [UPLINK_TAP, LAN_TAP, UPLINK, UPLINK_BRIDGE, LAN] {
        router.ip(&["link", "set", link, "up"])?;
    }
    Ok(())
}

/// Plugs or pulls the VM's LAN cable (its tap's link in the router namespace).
pub fn set_lan_cable(router: &Netns, connected: bool) -> Result<(), LabError> {
    router.ip(&["link", "set", LAN_TAP, if connected { "up" } else { "down" }]).map(|_| ())
}

/// Builds the image of `perm` into `out` with `routerd-image` (from this build), logging to `log`.
pub fn build_image(perm: &Path, out: &Path, log: &Path) -> Result<(), LabError> {
    let program = ROUTERD_IMAGE.locate()?;
    let mut command = std::process::Command::new(program);
    command.args(["build", "--size", "1G", "--hostname", "router", "--version-name", "first", "--out"]);
    command.arg(out).arg("--perm").arg(perm);
    let output = crate::command::run_unchecked(&mut command)?;
    let _ = std::fs::write(log, output.combined());
    if !output.success {
        return Err(LabError::unexpected("routerd-image build", output.combined()));
    }
    Ok(())
}

/// Builds a system update bundle named `version` (around `routerd` when given, signed with the private key
/// `sign` when given) with `routerd-image bundle`.
pub fn build_bundle(out: &Path, version: &str, routerd: Option<&Path>, sign: Option<&Path>) -> Result<(), LabError> {
    let program = ROUTERD_IMAGE.locate()?;
    let mut command = std::process::Command::new(program);
    command.args(["bundle", "--version-name", version, "--out"]).arg(out);
    if let Some(routerd) = routerd {
        command.arg("--routerd").arg(routerd);
    }
    if let Some(key) = sign {
        command.arg("--sign").arg(key);
    }
    let output = crate::command::run_unchecked(&mut command)?;
    if !output.success {
        return Err(LabError::unexpected("routerd-image bundle", output.combined()));
    }
    Ok(())
}

/// Makes an ed25519 key pair for bundles with `routerd-image keygen`: the private key at `out`, and returns the
/// public key as routerd.json's `update_signing_keys` takes it.
pub fn signing_key(out: &Path) -> Result<String, LabError> {
    let program = ROUTERD_IMAGE.locate()?;
    let mut command = std::process::Command::new(program);
    command.args(["keygen", "--out"]).arg(out);
    let output = crate::command::run_unchecked(&mut command)?;
    if !output.success {
        return Err(LabError::unexpected("routerd-image keygen", output.combined()));
    }
    let public = PathBuf::from(format!("{}.pub", out.display()));
    let text = std::fs::read_to_string(&public).context(|| format!("reading {}", public.display()))?;
    Ok(text.trim().to_string())
}

pub fn perm_partition(image: &Path) -> String {
    // The layout routerd-image writes for a 1 GiB image: 1 MiB, boot 64 MiB, two slots of 256 MiB.
    format!("{}?offset={}", image.display(), (1 + 64 + 2 * 256) << 20)
}

/// The appliance running in qemu.
#[derive(Clone, Debug)]
pub struct Vm {
    pub pid: u32,
    pub console: PathBuf,
    /// When qemu started (power-on).
    pub powered_on: std::time::Instant,
}

/// Where the VM's firmware boots from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootFrom {
    Disk,
    /// The disk when it is bootable, else the network through the LAN port (PXE, iPXE from ipxe-qemu), as an
    /// apu2 does with PXE after the disk in its boot order. The uplink NIC has no boot ROM.
    DiskThenNetwork,
}

impl Vm {
    /// Boots `image` in qemu in the router namespace; the serial console goes to `dir/console.log`.
    pub fn boot(tracker: &Tracker, router: &Netns, image: &Path, dir: &Path) -> Result<Vm, LabError> {
        Vm::boot_from(tracker, router, image, dir, BootFrom::Disk)
    }

    /// Boots the disk `image` as `from` says.
    pub fn boot_from(
        tracker: &Tracker,
        router: &Netns,
        image: &Path,
        dir: &Path,
        from: BootFrom,
    ) -> Result<Vm, LabError> {
        let qemu = QEMU.locate().ok_or(LabError::MissingPrograms(vec![(QEMU.name, QEMU.package)]))?;
        std::fs::create_dir_all(dir).map_err(|e| LabError::unexpected("creating the VM's directory", e.to_string()))?;
        let console = dir.join("console.log");
        let _ = std::fs::remove_file(&console);
        let args: Vec<String> = [
            "-nographic",
            "-m",
            "512",
            "-monitor",
            "none",
            "-serial",
            &format!("file:{}", console.display()),
            "-drive",
            &format!("file={},format=raw,if=none,id=disk", image.display()),
            "-device",
            "ahci,id=ahci",
            "-device",
            "ide-hd,drive=disk,bus=ahci.0",
            "-netdev",
            &format!("tap,id=up,ifname={UPLINK_TAP},script=no,downscript=no"),
            "-device",
            &format!(
                "e1000,netdev=up,mac={UPLINK_MAC}{}",
                if from == BootFrom::DiskThenNetwork { ",romfile=" } else { "" }
            ),
            "-netdev",
            &format!("tap,id=lan,ifname={LAN_TAP},script=no,downscript=no"),
            "-device",
            &format!("e1000,netdev=lan,mac={LAN_BRIDGE_MAC}"),
            "-device",
            "i6300esb",
            // A clock battery gone flat long ago: the router must not believe it (see the clock checks).
            "-rtc",
            "base=2020-01-01T00:00:00",
        ]
        .map(String::from)
        .to_vec();
        let mut args = args;
        if from == BootFrom::DiskThenNetwork {
            // With nothing to boot, retry after 10 s (SeaBIOS otherwise stops at "No bootable device").
            args.extend(["-boot".to_string(), "order=cn,reboot-timeout=10000".to_string()]);
        }
        let pid = tracker.spawn("qemu (the appliance)", router, &qemu, &args, &[], &dir.join("qemu.log"))?;
        Ok(Vm { pid, console, powered_on: std::time::Instant::now() })
    }

    /// Boots `image` in the lab's router namespace.
    pub fn boot_image(lab: &crate::Lab, image: &Path) -> Result<Vm, LabError> {
        let dir = image.parent().unwrap_or(Path::new("/tmp"));
        Vm::boot(&lab.tracker(), lab.router().netns(), image, dir)
    }

    /// The serial console so far, without the terminal escapes of the BIOS and syslinux.
    pub fn console_text(&self) -> String {
        let bytes = std::fs::read(&self.console).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        strip_escapes(&text)
    }

    /// Waits until the console shows `needle` (after the `after`-th byte of the text, to skip earlier boots).
    pub fn wait_for_console(&self, needle: &str, after: usize, timeout: Duration) -> Result<usize, LabError> {
        wait::until(&format!("{needle:?} on the appliance's console"), timeout, || {
            let text = self.console_text();
            Ok(text.get(after..).and_then(|rest| rest.find(needle)).map(|at| after + at))
        })
    }
}

fn strip_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        if c != '\r' {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn terminal_escapes_are_removed() {
        assert_eq!(super::strip_escapes("\u{1b}[2J\u{1b}[1;1HSeaBIOS\r\nok"), "SeaBIOS\nok");
    }
}
