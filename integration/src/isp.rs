//! The ISP: real third-party servers on the far side of the router's uplink.
//!
//! dnsmasq serves DHCPv4 (and DHCPv6 without prefix delegation in that variant), kea-dhcp6 serves DHCPv6 with
//! prefix delegation and routes each delegated prefix back to the router through its run_script hook, radvd
//! announces the link (M and O flags, no SLAAC), unbound answers a few `example.*` names, and a small HTTP server
//! plays the internet host.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    addresses::*,
    error::{IoContext, LabError},
    netns::Netns,
    programs,
    sockets::{self, Protocol},
    tracker::Tracker,
    wait,
};

pub const INTERFACE: &str = "isp0";
/// dnsmasq refuses shorter leases, for DHCPv4 and DHCPv6.
const DNSMASQ_MIN_LEASE: u32 = 120;
const READY_TIMEOUT: Duration = Duration::from_secs(10);
const NTP_PORT: u16 = 123;

/// Which server answers DHCPv6 on the uplink.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Dhcpv6Server {
    /// kea-dhcp6: addresses (IA_NA) and a /56 per client (IA_PD), routed to the client.
    #[default]
    KeaWithPrefixDelegation,
    /// dnsmasq: addresses only. It silently leaves IA_PD out of its answers: an ISP without prefix delegation.
    DnsmasqWithoutPrefixDelegation,
}

/// Lease lengths and timers of the ISP's servers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Timers {
    /// Ten-minute DHCPv4 leases, DHCPv6 renew after 5 minutes.
    #[default]
    Normal,
    /// Renew, rebind and expiry within a test: DHCPv4 lease 120 s (dnsmasq's minimum) with T1 15 s and T2 30 s;
    /// kea's DHCPv6: renew 10 s, rebind 20 s, preferred 30 s, valid 40 s (dnsmasq's DHCPv6, in the variant
    /// without prefix delegation, stays at its 120 s minimum with T1 60 s and T2 105 s).
    Short,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct V4Timers {
    pub lease: u32,
    pub t1: u32,
    pub t2: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct V6Timers {
    pub renew: u32,
    pub rebind: u32,
    pub preferred: u32,
    pub valid: u32,
}

impl Timers {
    pub fn v4(self) -> V4Timers {
        match self {
            Timers::Normal => V4Timers { lease: 600, t1: 300, t2: 525 },
            Timers::Short => V4Timers { lease: 120, t1: 15, t2: 30 },
        }
    }

    pub fn v6(self) -> V6Timers {
        match self {
            Timers::Normal => V6Timers { renew: 300, rebind: 480, preferred: 600, valid: 900 },
            Timers::Short => V6Timers { renew: 10, rebind: 20, preferred: 30, valid: 40 },
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IspOptions {
    pub dhcpv6: Dhcpv6Server,
    pub timers: Timers,
}

/// The running ISP.
#[derive(Debug)]
pub struct Isp {
    netns: Netns,
    dir: PathBuf,
    options: IspOptions,
    tracker: Tracker,
    dnsmasq: std::sync::Mutex<Option<u32>>,
    kea: std::sync::Mutex<Option<u32>>,
    /// The /40 that prefixes are delegated from (changed to test a renumbering).
    pd_pool: std::sync::Mutex<String>,
}

impl Isp {
    /// Configures the ISP's addresses (the link is already there) and starts its servers, each checked ready.
    pub fn start(tracker: &Tracker, netns: Netns, dir: &Path, options: IspOptions) -> Result<Isp, LabError> {
        fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
        let isp = Isp {
            netns,
            dir: dir.to_path_buf(),
            options,
            tracker: tracker.clone(),
            dnsmasq: std::sync::Mutex::new(None),
            kea: std::sync::Mutex::new(None),
            pd_pool: std::sync::Mutex::new(ISP_PD_POOL.to_string()),
        };
        isp.configure_addresses()?;
        isp.start_dnsmasq(tracker)?;
        if options.dhcpv6 == Dhcpv6Server::KeaWithPrefixDelegation {
            isp.start_kea(tracker)?;
        }
        isp.start_radvd(tracker)?;
        isp.start_unbound(tracker)?;
        isp.start_ntp(tracker)?;
        isp.start_http_host(tracker)?;
        Ok(isp)
    }

    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    pub fn options(&self) -> IspOptions {
        self.options
    }

    /// Stops the DHCPv4 server (dnsmasq), as when the ISP's server is down.
    pub fn stop_dhcp4(&self) {
        if let Some(pid) = self.dnsmasq.lock().unwrap_or_else(|p| p.into_inner()).take() {
            self.tracker.stop(pid);
        }
    }

    /// Starts the DHCPv4 server again; with `forget_leases`, as a different server that knows no lease.
    pub fn start_dhcp4(&self, forget_leases: bool) -> Result<(), LabError> {
        if forget_leases {
            let _ = fs::remove_file(self.dir.join("dnsmasq.leases"));
        }
        self.start_dnsmasq(&self.tracker)
    }

    /// Stops kea-dhcp6 (the DHCPv6 server with prefix delegation), as when the ISP's server is down.
    pub fn stop_dhcp6(&self) {
        if let Some(pid) = self.kea.lock().unwrap_or_else(|p| p.into_inner()).take() {
            self.tracker.stop(pid);
        }
    }

    /// Starts kea-dhcp6 again, with the leases it had.
    pub fn start_dhcp6(&self) -> Result<(), LabError> {
        self.start_kea(&self.tracker)
    }

    /// Restarts kea delegating from another /40, as when an ISP renumbers its customers: the router's next
    /// renewal learns that its prefix is gone.
    pub fn renumber_dhcp6(&self, pd_pool: &str) -> Result<(), LabError> {
        self.stop_dhcp6();
        *self.pd_pool.lock().unwrap_or_else(|p| p.into_inner()) = pd_pool.to_string();
        self.start_dhcp6()
    }

    fn pd_pool(&self) -> String {
        self.pd_pool.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// dnsmasq's log so far.
    pub fn dhcp4_log(&self) -> String {
        fs::read_to_string(self.dir.join("dnsmasq.log")).unwrap_or_default()
    }

    /// Lines the kea hook wrote: one per delegated prefix it routed to the router, or removed again.
    pub fn route_hook_log(&self) -> String {
        fs::read_to_string(self.dir.join("kea-route-hook.log")).unwrap_or_default()
    }

    /// The ISP's IPv6 routes (`ip -6 route`), e.g. to see the route to a delegated prefix.
    pub fn ipv6_routes(&self) -> Result<String, LabError> {
        self.netns.ip(&["-6", "route", "show"])
    }

    /// dnsmasq's lease file: `EXPIRY MAC IP HOSTNAME CLIENT-ID` per line.
    pub fn dhcp4_leases(&self) -> String {
        fs::read_to_string(self.dir.join("dnsmasq.leases")).unwrap_or_default()
    }

    fn configure_addresses(&self) -> Result<(), LabError> {
        let ns = &self.netns;
        ns.ip(&["addr", "add", &format!("{ISP_V4}/{ISP_V4_PREFIX_LEN}"), "dev", INTERFACE])?;
        ns.ip(&["-6", "addr", "add", &format!("{ISP_V6}/64"), "dev", INTERFACE, "nodad"])?;
        ns.ip(&["addr", "add", &format!("{INTERNET_HOST_V4}/32"), "dev", "lo"])?;
        ns.ip(&["-6", "addr", "add", &format!("{INTERNET_HOST_V6}/128"), "dev", "lo"])?;
        // The ISP is a router (radvd insists on it), and it must not take RAs from its customers.
        ns.sysctl(&[("net/ipv4/ip_forward", "1"), ("net/ipv6/conf/all/forwarding", "1")])
    }

    fn start_dnsmasq(&self, tracker: &Tracker) -> Result<(), LabError> {
        let dir = &self.dir;
        let mut args = dnsmasq_args(self.options, dir);
        args.push(format!("--pid-file={}", dir.join("dnsmasq.pid").display()));
        let program = programs::DNSMASQ.locate().unwrap_or_else(|| "dnsmasq".into());
        let pid = tracker.spawn("isp dnsmasq", &self.netns, &program, &args, &[], &dir.join("dnsmasq.log"))?;
        *self.dnsmasq.lock().unwrap_or_else(|p| p.into_inner()) = Some(pid);
        let wants_v6 = self.options.dhcpv6 == Dhcpv6Server::DnsmasqWithoutPrefixDelegation;
        wait_ready(tracker, "isp dnsmasq", pid, || {
            sockets::is_bound(pid, Protocol::Udp, 67) && (!wants_v6 || sockets::is_bound(pid, Protocol::Udp, 547))
        })
    }

    fn start_kea(&self, tracker: &Tracker) -> Result<(), LabError> {
        let dir = &self.dir;
        let hook = dir.join("kea-route-hook.sh");
        let hook_log = dir.join("kea-route-hook.log");
        write_executable(
            &hook,
            &include_str!("assets/kea_route_hook.sh").replace("@LOG@", &hook_log.to_string_lossy()),
        )?;
        let config = dir.join("kea-dhcp6.json");
        let text = serde_json::to_string_pretty(&kea_config(self.options.timers, dir, &hook, &self.pd_pool()))
            .map_err(|e| LabError::unexpected("writing kea's configuration", e.to_string()))?;
        fs::write(&config, text).context(|| format!("writing {}", config.display()))?;
        let env = [("KEA_PIDFILE_DIR", dir.display().to_string()), ("KEA_LOCKFILE_DIR", dir.display().to_string())];
        let program = programs::KEA_DHCP6.locate().unwrap_or_else(|| "kea-dhcp6".into());
        let args = vec!["-c".to_string(), config.display().to_string()];
        let pid = tracker.spawn("isp kea-dhcp6", &self.netns, &program, &args, &env, &dir.join("kea-dhcp6.log"))?;
        *self.kea.lock().unwrap_or_else(|p| p.into_inner()) = Some(pid);
        wait_ready(tracker, "isp kea-dhcp6", pid, || sockets::is_bound(pid, Protocol::Udp, 547))
    }

    fn start_radvd(&self, tracker: &Tracker) -> Result<(), LabError> {
        let dir = &self.dir;
        let config = dir.join("radvd.conf");
        fs::write(&config, radvd_config()).context(|| format!("writing {}", config.display()))?;
        let pid_file = dir.join("radvd.pid");
        let args = ["-n", "-C", &config.to_string_lossy(), "-p", &pid_file.to_string_lossy(), "-m", "stderr"]
            .map(String::from)
            .to_vec();
        let program = programs::RADVD.locate().unwrap_or_else(|| "radvd".into());
        let pid = tracker.spawn("isp radvd", &self.netns, &program, &args, &[], &dir.join("radvd.log"))?;
        // radvd writes its PID file once its ICMPv6 socket is open and the configuration is accepted.
        wait_ready(tracker, "isp radvd", pid, || pid_file.exists())
    }

    fn start_unbound(&self, tracker: &Tracker) -> Result<(), LabError> {
        let dir = &self.dir;
        let config = dir.join("unbound.conf");
        fs::write(&config, unbound_config(dir)).context(|| format!("writing {}", config.display()))?;
        let args = vec!["-d".to_string(), "-c".to_string(), config.display().to_string()];
        let program = programs::UNBOUND.locate().unwrap_or_else(|| "unbound".into());
        let pid = tracker.spawn("isp unbound", &self.netns, &program, &args, &[], &dir.join("unbound.log"))?;
        wait_ready(tracker, "isp unbound", pid, || sockets::is_bound(pid, Protocol::Udp, 53))
    }

    /// chronyd as the ISP's NTP server: it serves the host's time (as stratum 8) and never sets any clock.
    fn start_ntp(&self, tracker: &Tracker) -> Result<(), LabError> {
        let dir = &self.dir;
        let config = dir.join("chrony.conf");
        let text = format!(
            "local stratum 8\nallow all\ncmdport 0\npidfile {pid}\ndriftfile {drift}\n",
            pid = dir.join("chronyd.pid").display(),
            drift = dir.join("chrony.drift").display()
        );
        fs::write(&config, text).context(|| format!("writing {}", config.display()))?;
        // -x: never touch the clock (the host's); -d: foreground, logging to stderr; -u root: no user switch.
        let args = ["-x", "-d", "-u", "root", "-f", &config.to_string_lossy()].map(String::from).to_vec();
        let program = programs::CHRONYD.locate().unwrap_or_else(|| "chronyd".into());
        let pid = tracker.spawn("isp chronyd (NTP)", &self.netns, &program, &args, &[], &dir.join("chronyd.log"))?;
        wait_ready(tracker, "isp chronyd", pid, || sockets::is_bound(pid, Protocol::Udp, NTP_PORT))
    }

    fn start_http_host(&self, tracker: &Tracker) -> Result<(), LabError> {
        let script = self.dir.join("http_host.py");
        fs::write(&script, include_str!("assets/http_host.py")).context(|| format!("writing {}", script.display()))?;
        let args = vec!["-u".to_string(), script.display().to_string(), "80".to_string()];
        let program = PathBuf::from(programs::PYTHON3.name);
        let pid = tracker.spawn("internet http host", &self.netns, &program, &args, &[], &self.dir.join("http.log"))?;
        wait_ready(tracker, "internet http host", pid, || sockets::is_bound(pid, Protocol::Tcp, 80))
    }
}

/// Waits until `ready` holds, failing at once (with its log) if the process exits first.
pub(crate) fn wait_ready(
    tracker: &Tracker,
    name: &str,
    pid: u32,
    mut ready: impl FnMut() -> bool,
) -> Result<(), LabError> {
    wait::until(&format!("{name} to be ready"), READY_TIMEOUT, || {
        if let Some(status) = tracker.exit_status(pid) {
            let log = tracker.processes().into_iter().find(|p| p.pid == pid).map(|p| p.log);
            let log_tail = log.map(|l| crate::tracker::log_tail(&l, 15)).unwrap_or_default();
            return Err(LabError::ExitedEarly { name: name.to_string(), status, log_tail });
        }
        Ok(ready().then_some(()))
    })
}

pub(crate) fn write_executable(path: &Path, text: &str) -> Result<(), LabError> {
    fs::write(path, text).context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).context(|| format!("chmod {}", path.display()))
}

/// dnsmasq as a DHCP server only (its DNS off), on `interface` alone, with its lease file at `leases`.
pub(crate) fn dnsmasq_dhcp_only_args(interface: &str, leases: &Path) -> Vec<String> {
    vec![
        "--keep-in-foreground".to_string(),
        "--conf-file=/dev/null".to_string(),
        "--port=0".to_string(),
        format!("--interface={interface}"),
        "--bind-interfaces".to_string(),
        "--dhcp-authoritative".to_string(),
        // dnsmasq would ping each address for about 3 s before offering it.
        "--no-ping".to_string(),
        "--log-dhcp".to_string(),
        "--log-facility=-".to_string(),
        // Root, so that it can keep writing its lease file in our temp directory.
        "--user=root".to_string(),
        format!("--dhcp-leasefile={}", leases.display()),
    ]
}

fn dnsmasq_args(options: IspOptions, dir: &Path) -> Vec<String> {
    let v4 = options.timers.v4();
    let (first, last) = ISP_DHCP4_POOL;
    // DNS off: unbound is the ISP's resolver.
    let mut args = dnsmasq_dhcp_only_args(INTERFACE, &dir.join("dnsmasq.leases"));
    args.extend([
        format!("--dhcp-range={first},{last},255.255.255.0,{}", v4.lease),
        format!("--dhcp-option=option:router,{ISP_V4}"),
        format!("--dhcp-option=option:dns-server,{ISP_V4}"),
        format!("--dhcp-option=option:ntp-server,{ISP_V4}"),
        format!("--dhcp-option=option:T1,{}", v4.t1),
        format!("--dhcp-option=option:T2,{}", v4.t2),
    ]);
    if options.dhcpv6 == Dhcpv6Server::DnsmasqWithoutPrefixDelegation {
        let v6 = options.timers.v6();
        let (first, last) = ISP_DHCP6_POOL;
        // dnsmasq does not go below two minutes, for DHCPv6 either.
        args.push(format!("--dhcp-range={first},{last},64,{}", v6.valid.max(DNSMASQ_MIN_LEASE)));
        args.push(format!("--dhcp-option=option6:dns-server,[{ISP_V6}]"));
    }
    args
}

fn kea_config(timers: Timers, dir: &Path, hook: &Path, pd_pool: &str) -> serde_json::Value {
    let v6 = timers.v6();
    let (first, last) = ISP_DHCP6_POOL;
    serde_json::json!({
        "Dhcp6": {
            "interfaces-config": {
                "interfaces": [INTERFACE],
                "service-sockets-max-retries": 50,
                "service-sockets-retry-wait-time": 100
            },
            // Not persisted: kea's default location (/var/lib/kea) belongs to the host's own kea.
            "server-id": { "type": "EN", "enterprise-id": 2495, "identifier": "6c6162697370", "persist": false },
            "lease-database": {
                "type": "memfile",
                "persist": true,
                "name": dir.join("kea-leases6.csv"),
                "lfc-interval": 0
            },
            "renew-timer": v6.renew,
            "rebind-timer": v6.rebind,
            "preferred-lifetime": v6.preferred,
            "valid-lifetime": v6.valid,
            "option-data": [
                { "name": "dns-servers", "data": ISP_V6.to_string() },
                { "name": "sntp-servers", "data": ISP_V6.to_string() }
            ],
            "hooks-libraries": [{
                "library": programs::KEA_RUN_SCRIPT_HOOK,
                "parameters": { "name": hook, "sync": false }
            }],
            "subnet6": [{
                "id": 1,
                "subnet": ISP_LINK_V6_PREFIX,
                "interface": INTERFACE,
                "pools": [{ "pool": format!("{first} - {last}") }],
                "pd-pools": [{
                    "prefix": pd_pool,
                    "prefix-len": ISP_PD_POOL_LEN,
                    "delegated-len": ISP_PD_DELEGATED_LEN
                }]
            }],
            "loggers": [{
                "name": "kea-dhcp6",
                "output_options": [{ "output": "stdout", "flush": true }],
                "severity": "INFO"
            }]
        }
    })
}

fn radvd_config() -> String {
    format!(
        "interface {INTERFACE} {{
    AdvSendAdvert on;
    MinRtrAdvInterval 3;
    MaxRtrAdvInterval 10;
    # Like fiber7: addresses and prefixes come from DHCPv6, the RA gives the default route.
    AdvManagedFlag on;
    AdvOtherConfigFlag on;
    AdvDefaultLifetime 1800;
    prefix {ISP_LINK_V6_PREFIX} {{
        AdvOnLink on;
        AdvAutonomous off;
    }};
    RDNSS {ISP_V6} {{
    }};
}};
"
    )
}

fn unbound_config(dir: &Path) -> String {
    let mut local_data = String::new();
    for name in INTERNET_NAMES {
        local_data.push_str(&format!("    local-data: \"{name}. 300 IN A {INTERNET_HOST_V4}\"\n"));
        local_data.push_str(&format!("    local-data: \"{name}. 300 IN AAAA {INTERNET_HOST_V6}\"\n"));
    }
    // Single quotes around the whole entry let the TXT strings keep their double quotes.
    let strings: Vec<String> =
        (0..LARGE_TXT_STRINGS).map(|i| format!("\"{}\"", char::from(b'a' + i as u8).to_string().repeat(250))).collect();
    local_data.push_str(&format!("    local-data: '{LARGE_TXT_NAME}. 300 IN TXT {}'\n", strings.join(" ")));
    for (name, address) in [REBINDING_NAME, ALLOWLISTED_PRIVATE_NAME] {
        local_data.push_str(&format!("    local-data: \"{name}. 300 IN A {address}\"\n"));
    }
    // Every name under the benchmark zone gets the zone's own answers.
    local_data.push_str(&format!("    local-zone: \"{BENCH_ZONE}.\" redirect\n"));
    local_data.push_str(&format!("    local-data: \"{BENCH_ZONE}. 300 IN A {INTERNET_HOST_V4}\"\n"));
    local_data.push_str(&format!("    local-data: \"{BENCH_ZONE}. 300 IN AAAA {INTERNET_HOST_V6}\"\n"));
    format!(
        "server:
    interface: {ISP_V4}
    interface: {ISP_V6}
    port: 53
    do-daemonize: no
    chroot: \"\"
    username: \"\"
    directory: \"{dir}\"
    pidfile: \"{dir}/unbound.pid\"
    use-syslog: no
    logfile: \"\"
    verbosity: 1
    log-queries: yes
    ip-freebind: yes
    module-config: \"iterator\"
    access-control: 0.0.0.0/0 allow
    access-control: ::/0 allow
    # Never the real root servers: this resolver knows only its own names.
    local-zone: \".\" static
{local_data}
remote-control:
    control-enable: no
",
        dir = dir.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_variant_without_prefix_delegation_gives_dnsmasq_a_dhcpv6_range() {
        let dir = Path::new("/tmp/x");
        let with_kea = dnsmasq_args(IspOptions::default(), dir);
        assert!(!with_kea.iter().any(|a| a.contains("2001:db8")), "{with_kea:?}");
        let options = IspOptions { dhcpv6: Dhcpv6Server::DnsmasqWithoutPrefixDelegation, timers: Timers::Short };
        let without_pd = dnsmasq_args(options, dir);
        assert!(without_pd.contains(&"--dhcp-range=2001:db8:0:1::1000,2001:db8:0:1::1fff,64,120".to_string()));
        assert!(without_pd.contains(&"--dhcp-option=option:T1,15".to_string()));
    }

    #[test]
    fn kea_delegates_56s_and_uses_the_chosen_timers() {
        let config = kea_config(Timers::Short, Path::new("/tmp/x"), Path::new("/tmp/x/hook.sh"), ISP_PD_POOL);
        let subnet = &config["Dhcp6"]["subnet6"][0];
        assert_eq!(subnet["pd-pools"][0]["delegated-len"], 56);
        assert_eq!(config["Dhcp6"]["renew-timer"], 10);
        assert_eq!(config["Dhcp6"]["hooks-libraries"][0]["parameters"]["name"], "/tmp/x/hook.sh");
    }

    #[test]
    fn unbound_never_recurses_and_answers_the_example_names() {
        let config = unbound_config(Path::new("/tmp/x"));
        assert!(config.contains("local-zone: \".\" static"));
        assert!(config.contains("local-data: \"www.example.com. 300 IN AAAA 2001:db8:ffff::80\""));
    }
}
