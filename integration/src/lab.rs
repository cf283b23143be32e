//! The whole virtual home network: ISP, router, LAN devices; built in one call, removed on drop.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use crate::{
    addresses::*,
    error::{IoContext, LabError},
    isp::{self, Isp, IspOptions},
    lan::{self, LanDevice},
    netns::{self, Netns},
    programs,
    router::{self, Router},
    tracker::{self, Inventory, Tracker},
    wait,
};

/// Where `lab up` keeps a running lab's files and its inventory for `lab down`.
pub const PERSISTENT_DIR: &str = "/run/routerd-lab";
const INVENTORY_FILE: &str = "inventory.json";
/// Namespaces of labs that belong to a process (tests, `lab demo`) are named `rdl<PID>x<N>-<role>`, so a later
/// lab can tell when their owner died without cleaning up (SIGKILL) and remove them.
const EPHEMERAL_PREFIX: &str = "rdl";
/// Namespaces of `lab up` are named `rdlab-<NAME>-<role>` and live until `lab down`.
const PERSISTENT_PREFIX: &str = "rdlab-";
const LINK_LOCAL_TIMEOUT: Duration = Duration::from_secs(10);

static NEXT_LAB: AtomicU32 = AtomicU32::new(1);

#[derive(Clone, Debug)]
pub struct LabOptions {
    /// LAN devices `lan1` … `lanN`, each with `eth0` on the router's bridge `lan0`.
    pub lan_devices: usize,
    pub isp: IspOptions,
    /// IPv6 duplicate address detection as on real hardware (addresses are tentative for about a second).
    /// Off by default so that peers can bind at once; the ISP's servers wait for it when it is on.
    pub dad: bool,
    /// Leave bridge netfilter on in the router namespace (the kernel's default), so that packets bridged inside
    /// `lan0` also pass the IP hooks. Off by default: the lab's bridge stands in for a switch.
    pub bridge_netfilter: bool,
    /// Start routerd once the network is up.
    pub start_routerd: bool,
    /// The router is the appliance (a disk image in qemu, see [`Lab::boot_appliance`]), not routerd in the
    /// router namespace: that namespace only bridges the VM's NICs to the ISP and the LAN devices.
    pub appliance: bool,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            lan_devices: 2,
            isp: IspOptions::default(),
            dad: false,
            bridge_netfilter: false,
            start_routerd: true,
            appliance: false,
        }
    }
}

pub struct Lab {
    name: String,
    tracker: Tracker,
    work: PathBuf,
    isp: Isp,
    router: Router,
    lans: Vec<LanDevice>,
    options: LabOptions,
    detached: bool,
    started: Instant,
    /// The appliance, once booted.
    vm: std::sync::Mutex<Option<crate::appliance::Vm>>,
}

impl Lab {
    /// Builds a lab owned by this process; dropping it removes everything.
    pub fn start(options: LabOptions) -> Result<Lab, LabError> {
        Lab::start_tracked(options, Tracker::default())
    }

    /// Like [`Lab::start`], recording into `tracker`, which the caller may also hand to a signal handler.
    pub fn start_tracked(options: LabOptions, tracker: Tracker) -> Result<Lab, LabError> {
        preflight()?;
        sweep_abandoned();
        let name = format!("{EPHEMERAL_PREFIX}{}x{}", std::process::id(), NEXT_LAB.fetch_add(1, Ordering::Relaxed));
        let temp = tempfile::Builder::new()
            .prefix(&format!("routerd-lab-{name}-"))
            .tempdir()
            .context(|| "creating the lab's temporary directory".to_string())?;
        // Removed by the tracker's teardown, which also runs from `lab`'s Ctrl-C handler; not by the TempDir.
        let work = temp.keep();
        tracker.own_dir(&work);
        Lab::build(name, work, options, tracker)
    }

    /// Builds a lab that outlives this process (`lab up`): its files go to `/run/routerd-lab/NAME`, and
    /// [`Lab::detach`] leaves it running for `lab down`.
    pub fn start_persistent(name: &str, options: LabOptions, tracker: Tracker) -> Result<Lab, LabError> {
        validate_name(name)?;
        preflight()?;
        let work = Path::new(PERSISTENT_DIR).join(name);
        if work.join(INVENTORY_FILE).exists() {
            return Err(LabError::unexpected(
                format!("starting lab {name:?}"),
                format!("it is already running; remove it first with `lab down --name {name}`"),
            ));
        }
        fs::create_dir_all(&work).context(|| format!("creating {}", work.display()))?;
        tracker.own_dir(&work);
        Lab::build(format!("{PERSISTENT_PREFIX}{name}"), work, options, tracker)
    }

    fn build(name: String, work: PathBuf, options: LabOptions, tracker: Tracker) -> Result<Lab, LabError> {
        let started = Instant::now();
        match Lab::assemble(&name, &tracker, &work, &options) {
            Ok((isp, router, lans)) => Ok(Lab {
                name,
                tracker,
                work,
                isp,
                router,
                lans,
                options,
                detached: false,
                started,
                vm: std::sync::Mutex::default(),
            }),
            Err(error) => {
                // Leave nothing half-built behind.
                tracker.teardown();
                Err(error)
            }
        }
    }

    fn assemble(
        name: &str,
        tracker: &Tracker,
        work: &Path,
        options: &LabOptions,
    ) -> Result<(Isp, Router, Vec<LanDevice>), LabError> {
        // The inventory is saved first, so that a lab whose build is interrupted can still be removed.
        let save = || -> Result<(), LabError> { save_inventory(work, &tracker.inventory()) };
        let isp_ns = tracker.create_namespace(&format!("{name}-isp"), options.dad)?;
        let router_ns = tracker.create_namespace(&format!("{name}-router"), options.dad)?;
        let mut lan_namespaces = Vec::new();
        for n in 1..=options.lan_devices {
            lan_namespaces.push(tracker.create_namespace(&format!("{name}-lan{n}"), options.dad)?);
        }
        save()?;

        build_links(&isp_ns, &router_ns, &lan_namespaces)?;
        configure_router_namespace(&router_ns, options)?;
        if options.appliance {
            crate::appliance::wire(&router_ns)?;
        }
        // The kernel adds link-local addresses a moment after a link comes up (and with DAD, keeps them tentative
        // for about a second): DHCPv6 servers and clients started before then fail ("no link-local address").
        // The router's own interfaces are waited for only without DAD: with it, coping is routerd's job.
        wait_for_link_local(&isp_ns, isp::INTERFACE)?;
        for netns in &lan_namespaces {
            wait_for_link_local(netns, lan::INTERFACE)?;
        }
        if !options.dad && !options.appliance {
            wait_for_link_local(&router_ns, router::UPLINK)?;
        }

        let isp = Isp::start(tracker, isp_ns, &work.join("isp"), options.isp)?;
        save()?;
        let router = Router::prepare(tracker, router_ns, &work.join("router"))?;
        let lans = lan_namespaces
            .into_iter()
            .enumerate()
            .map(|(i, netns)| {
                LanDevice::new(i + 1, netns, &work.join(format!("lan{}", i + 1)), tracker, router.rtrctl_binary())
            })
            .collect();
        if options.start_routerd && !options.appliance {
            router.start_routerd()?;
        }
        save()?;
        Ok((isp, router, lans))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn options(&self) -> &LabOptions {
        &self.options
    }

    pub fn isp(&self) -> &Isp {
        &self.isp
    }

    pub fn router(&self) -> &Router {
        &self.router
    }

    /// LAN device `n`, 1-based like its name (`lan1`).
    pub fn lan(&self, n: usize) -> &LanDevice {
        match self.lans.get(n.wrapping_sub(1)) {
            Some(device) => device,
            None => self.fail(&format!("the lab has {} LAN devices; lan{n} does not exist", self.lans.len())),
        }
    }

    pub fn lans(&self) -> &[LanDevice] {
        &self.lans
    }

    /// Builds the appliance's disk image from the router's `--perm` (its interfaces, configuration and the lab's
    /// identity) and boots it in qemu. Only for a lab started with `appliance`.
    pub fn boot_appliance(&self) -> Result<crate::appliance::Vm, LabError> {
        let image = self.build_appliance_image()?;
        let vm = crate::appliance::Vm::boot_image(self, &image)?;
        *self.vm.lock().unwrap_or_else(|p| p.into_inner()) = Some(vm.clone());
        Ok(vm)
    }

    /// The appliance booted by [`Lab::boot_appliance`].
    pub fn appliance(&self) -> Option<crate::appliance::Vm> {
        self.vm.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Builds the appliance's disk image (`appliance/router.img` in the lab's directory) from the router's
    /// `--perm`.
    pub fn build_appliance_image(&self) -> Result<PathBuf, LabError> {
        if !self.options.appliance {
            return Err(LabError::unexpected("building the appliance", "the lab was not started with `appliance`"));
        }
        let dir = self.work.join("appliance");
        std::fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
        let image = dir.join("router.img");
        crate::appliance::build_image(&self.router.perm(), &image, &dir.join("build.log"))?;
        Ok(image)
    }

    pub fn work_dir(&self) -> &Path {
        &self.work
    }

    pub fn tracker(&self) -> Tracker {
        self.tracker.clone()
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The namespaces, in creation order.
    pub fn namespaces(&self) -> Vec<String> {
        self.tracker.inventory().namespaces
    }

    /// Saves the inventory (after a test started more processes) so `lab down` would find them.
    pub fn save_inventory(&self) -> Result<(), LabError> {
        save_inventory(&self.work, &self.tracker.inventory())
    }

    /// The tail of every log (routerd's, each peer's, each client's), for a failure message.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for process in self.tracker.processes() {
            let tail = tracker::log_tail(&process.log, 25);
            let state = match self.tracker.exit_status(process.pid) {
                Some(status) => format!("exited: {status}"),
                None => "running".to_string(),
            };
            text.push_str(&format!(
                "\n──── {} (pid {}, {state}) {}\n",
                process.name,
                process.pid,
                process.log.display()
            ));
            text.push_str(if tail.is_empty() { "(no output)" } else { &tail });
            text.push('\n');
        }
        let hook = self.isp.route_hook_log();
        if !hook.is_empty() {
            text.push_str(&format!("\n──── kea route hook\n{hook}"));
        }
        text
    }

    /// Fails the test with `message` and every log of the lab.
    pub fn fail(&self, message: &str) -> ! {
        panic!("{message}\n\nlogs of lab {}:{}", self.name, self.logs())
    }

    /// Unwraps a result, failing the test with the lab's logs when it is an error.
    pub fn check<T>(&self, result: Result<T, LabError>, what: &str) -> T {
        match result {
            Ok(value) => value,
            Err(error) => self.fail(&format!("{what}: {error}")),
        }
    }

    /// Leaves the lab running after this process exits (`lab up`); `lab down` removes it.
    pub fn detach(mut self) -> Result<PathBuf, LabError> {
        self.save_inventory()?;
        self.detached = true;
        Ok(self.work.clone())
    }

    /// Removes everything now and reports what could not be removed.
    pub fn teardown(mut self) -> Vec<String> {
        self.detached = true;
        self.tracker.teardown()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.detached {
            return;
        }
        if std::thread::panicking() && !self.tracker.processes().is_empty() {
            // Captured by the test harness and shown with the failing test.
            eprintln!("logs of lab {}:{}", self.name, self.logs());
        }
        for problem in self.tracker.teardown() {
            eprintln!("lab {}: cleaning up: {problem}", self.name);
        }
    }
}

/// Removes a lab started with `lab up`: every process it recorded, anything else in its namespaces, the
/// namespaces, and its files. Without an inventory (e.g. it was interrupted very early), its namespaces are found
/// by name.
pub fn down(name: &str) -> Result<Vec<String>, LabError> {
    validate_name(name)?;
    let work = Path::new(PERSISTENT_DIR).join(name);
    let prefix = format!("{PERSISTENT_PREFIX}{name}-");
    let mut inventory: Inventory = match fs::read_to_string(work.join(INVENTORY_FILE)) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            LabError::unexpected(format!("reading {}", work.join(INVENTORY_FILE).display()), e.to_string())
        })?,
        Err(_) => Inventory::default(),
    };
    for ns in netns::list() {
        if ns.starts_with(&prefix) && !inventory.namespaces.contains(&ns) {
            inventory.namespaces.push(ns);
        }
    }
    if inventory.namespaces.is_empty() && !work.exists() {
        return Err(LabError::NoSuchLab(name.to_string()));
    }
    let problems = Tracker::adopt(inventory).teardown();
    if work.exists() {
        fs::remove_dir_all(&work).context(|| format!("removing {}", work.display()))?;
    }
    Ok(problems)
}

/// Names of the labs started with `lab up` that are still there.
pub fn persistent_labs() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(PERSISTENT_DIR)
        .map(|dir| dir.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    for ns in netns::list() {
        let name = ns.strip_prefix(PERSISTENT_PREFIX).and_then(|rest| rest.rsplit_once('-')).map(|(n, _)| n);
        if let Some(name) = name.filter(|name| !names.iter().any(|known| known == name)) {
            names.push(name.to_string());
        }
    }
    names.sort();
    names
}

fn validate_name(name: &str) -> Result<(), LabError> {
    let valid = !name.is_empty()
        && name.len() <= 16
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
    if valid {
        Ok(())
    } else {
        Err(LabError::unexpected(
            format!("lab name {name:?}"),
            "use 1–16 lowercase letters and digits, starting with a letter",
        ))
    }
}

fn preflight() -> Result<(), LabError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(LabError::NotRoot);
    }
    programs::require(programs::ALL)
}

/// Removes namespaces (and their temp directories) of labs whose owning process is gone: a test killed with
/// SIGKILL cannot clean up after itself.
pub fn sweep_abandoned() -> Vec<String> {
    let mut abandoned = Vec::new();
    for ns in netns::list() {
        let Some(rest) = ns.strip_prefix(EPHEMERAL_PREFIX) else { continue };
        let Some((pid, _)) = rest.split_once('x') else { continue };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if !tracker::is_alive(pid) {
            abandoned.push(ns);
        }
    }
    if abandoned.is_empty() {
        return abandoned;
    }
    let labs: Vec<String> =
        abandoned.iter().filter_map(|ns| ns.rsplit_once('-').map(|(lab, _)| lab.to_string())).collect();
    Tracker::adopt(Inventory { namespaces: abandoned.clone(), processes: Vec::new() }).teardown();
    if let Ok(entries) = fs::read_dir(std::env::temp_dir()) {
        for entry in entries.filter_map(|e| e.ok()) {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if labs.iter().any(|lab| file_name.starts_with(&format!("routerd-lab-{lab}-"))) {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
    abandoned
}

fn save_inventory(work: &Path, inventory: &Inventory) -> Result<(), LabError> {
    let text = serde_json::to_string_pretty(inventory)
        .map_err(|e| LabError::unexpected("encoding the lab inventory", e.to_string()))?;
    let path = work.join(INVENTORY_FILE);
    let temp = work.join(format!(".{INVENTORY_FILE}.tmp"));
    fs::write(&temp, text).context(|| format!("writing {}", temp.display()))?;
    fs::rename(&temp, &path).context(|| format!("renaming {} into place", temp.display()))
}

/// `isp0` ⟷ `uplink0`, and each device's `eth0` ⟷ a port `lan0pN` of the bridge `lan0`. Links are created inside
/// the namespaces (the peer end directly in the other one), so nothing ever appears on the host.
fn build_links(isp: &Netns, router: &Netns, lans: &[Netns]) -> Result<(), LabError> {
    router.ip(&[
        "link",
        "add",
        router::UPLINK,
        "address",
        UPLINK_MAC,
        "type",
        "veth",
        "peer",
        "name",
        isp::INTERFACE,
        "address",
        ISP_MAC,
        "netns",
        isp.name(),
    ])?;
    add_switch(router, router::LAN, LAN_BRIDGE_MAC)?;
    for (i, lan) in lans.iter().enumerate() {
        let port = format!("{}p{}", router::LAN, i + 1);
        let mac = lan_device_mac(i + 1);
        router.ip(&[
            "link",
            "add",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            lan::INTERFACE,
            "address",
            &mac,
            "netns",
            lan.name(),
        ])?;
        router.ip(&["link", "set", &port, "master", router::LAN, "up"])?;
        lan.ip(&["link", "set", lan::INTERFACE, "up"])?;
    }
    isp.ip(&["link", "set", isp::INTERFACE, "up"])?;
    router.ip(&["link", "set", router::UPLINK, "up"])?;
    // lan0 stays down and without an address: routerd configures it from the generated interfaces.json (the
    // uplink is up like a plugged-in cable, so the lab's own clients can use it when routerd is not started).
    Ok(())
}

/// A bridge `name` with `mac` that acts as a switch, not a router of its own: no STP delay, and no multicast
/// snooping that could hide ND/RA.
pub(crate) fn add_switch(netns: &Netns, name: &str, mac: &str) -> Result<(), LabError> {
    let args = ["link", "add", name, "address", mac, "type", "bridge"];
    let switch = ["stp_state", "0", "forward_delay", "0", "mcast_snooping", "0"];
    netns.ip(&[&args[..], &switch[..]].concat())?;
    Ok(())
}

const BRIDGE_NETFILTER_KEYS: &[&str] = &[
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "net/bridge/bridge-nf-call-arptables",
];

fn configure_router_namespace(router: &Netns, options: &LabOptions) -> Result<(), LabError> {
    if options.bridge_netfilter {
        return Ok(());
    }
    // Built into the test machines' kernel and on in every new namespace: bridged LAN traffic would traverse the
    // IP hooks and break hairpin NAT. Keys are absent where br_netfilter is not loaded.
    let settings: Vec<(&str, &str)> =
        BRIDGE_NETFILTER_KEYS.iter().filter(|key| Netns::has_sysctl(key)).map(|key| (*key, "0")).collect();
    router.sysctl(&settings)
}

/// Waits until `interface` has a link-local address that is not tentative.
fn wait_for_link_local(netns: &Netns, interface: &str) -> Result<(), LabError> {
    let what = format!("a usable link-local address on {interface} in {}", netns.name());
    wait::until(&what, LINK_LOCAL_TIMEOUT, || {
        let usable = netns.ip(&["-6", "addr", "show", "dev", interface, "scope", "link", "-tentative"])?;
        Ok(usable.contains("inet6").then_some(()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_names_are_restricted_to_what_fits_interface_and_namespace_names() {
        assert!(validate_name("lab").is_ok());
        assert!(validate_name("home2").is_ok());
        for bad in ["", "Lab", "2lab", "a-b", "../x", "averyveryverylongname"] {
            assert!(validate_name(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
