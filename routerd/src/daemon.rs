//! Wiring: loads configuration and the PKI, binds the management listeners and starts every service under
//! the supervisor.

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use tokio::sync::watch;

use crate::{
    api::{self, ApiContext, LeaseView, SystemView, tls::TlsSource},
    config::Config,
    firewall::service::ForwardControl,
    lan::{
        dhcp4d::{PoolConfig, commands::LeaseControl},
        dns::service::DnsOptions,
    },
    netconfig::{self, Netconfig},
    pki::{Authority, PkiError, PkiPaths},
    restart::Restarter,
    supervisor::{Backoff, Shutdown, Statuses, Supervisor},
    system,
    uplink::{
        control::{Control, UplinkControl},
        dhcp4::service::Dhcp4Options,
        dhcp6::service::Dhcp6Options,
        state::UplinkSnapshot,
    },
};

/// The uplink interface's name (router7's convention; rename by MAC in interfaces.json).
pub const UPLINK: &str = "uplink0";

#[derive(Clone, Debug)]
pub struct Options {
    /// Directory of all configuration and state (`/perm`).
    pub perm: PathBuf,
    /// Management listeners; empty means port 9339 on every loopback and LAN address.
    pub listen: Vec<SocketAddr>,
    /// Metrics listeners; empty means port 8066 on every loopback and LAN address.
    pub metrics_listen: Vec<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{path}: {source}")]
    PermDir { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Tls(#[from] api::tls::TlsError),
    #[error("could not listen on any management address ({0}); pass --listen ADDR:PORT")]
    NoListener(String),
}

/// A started daemon. Dropping it does not stop it; call [`Running::shutdown`].
pub struct Running {
    pub listen_addrs: Vec<SocketAddr>,
    pub statuses: watch::Receiver<Statuses>,
    trigger: watch::Sender<bool>,
    supervisor: Supervisor,
    restart: watch::Receiver<bool>,
}

/// Why the daemon stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// SIGTERM or SIGINT.
    Signal,
    /// A service asked to be started again.
    Restart,
}

impl Running {
    /// Becomes `true` when a service asks for routerd to be started again (an update, a restore, a new CA).
    pub fn restart_requested(&self) -> watch::Receiver<bool> {
        self.restart.clone()
    }

    /// Asks every service to stop and waits for them (at most ten seconds).
    pub async fn shutdown(self) {
        let _ = self.trigger.send(true);
        if !self.supervisor.join(Duration::from_secs(10)).await {
            tracing::warn!("some services did not stop within ten seconds");
        }
    }
}

/// Starts routerd's services and returns once the API is listening.
pub async fn start(options: Options) -> Result<Running, DaemonError> {
    settle_perm(&options.perm)?;
    let config = load_config(&options.perm);
    let hostname = config.routerd.hostname.clone().unwrap_or_else(system::hostname);
    // Before the listeners are bound: the API listens on the LAN addresses that interfaces.json gives.
    let netconfig = configure_interfaces(&config).await;
    // Before forwarding is turned on and before anything listens: the router is never open without its firewall.
    let firewall_at_start = lock_down(&config);
    let endpoint = bind_api(&options, &hostname, &firewall_at_start)?;

    let (trigger, shutdown) = Shutdown::new();
    let mut supervisor = Supervisor::new(shutdown, Backoff::default());
    let statuses = supervisor.statuses();
    let (uplink_state, uplink_view) = watch::channel(UplinkSnapshot::default());
    let (lease_table, lease_view) = watch::channel(crate::lan::dhcp4d::LeaseSnapshot::default());
    let metrics = Arc::new(crate::counters::Metrics::default());
    let views = LanViews {
        uplink: system::interface_exists(UPLINK).then(|| uplink_state.subscribe()),
        applied: netconfig.as_ref().map(Netconfig::applied),
    };
    let lease_control = start_lan(&mut supervisor, &options, &config, &hostname, lease_table, views, metrics.clone());
    let capture = start_capture(&mut supervisor, netconfig.as_ref(), &config);
    let clock_view = start_timesync(&mut supervisor, &options, &config, uplink_state.subscribe());
    let uplink_control = match netconfig {
        Some(netconfig) => start_uplink(&mut supervisor, netconfig, &options, &config, &hostname, uplink_state),
        None => UplinkControl::default(),
    };
    let forward_control = start_firewall(&mut supervisor, &options, &config, &firewall_at_start);
    let diagnostics = start_diagnostics(
        &mut supervisor,
        &config,
        &hostname,
        uplink_view.clone(),
        statuses.clone(),
        lease_view.clone(),
        clock_view.clone(),
    );
    let collector = crate::metrics::collect::Collector {
        metrics,
        leases: lease_view.clone(),
        uplink: uplink_view.clone(),
        capture: capture.clone(),
        diagnostics: diagnostics.last(),
        firewall: forward_control.is_some(),
        started_at: SystemTime::now(),
        services: statuses.clone(),
        pools: lan_pools(&config),
        firewall_cache: Arc::default(),
    };
    start_metrics(&mut supervisor, &options, collector, firewall_at_start);
    let (restarter, restart) = Restarter::new();
    start_trials(&mut supervisor, &options.perm, &hostname, &diagnostics, &restarter);
    let api_context = ApiContext {
        authority: endpoint.authority,
        tls: endpoint.tls,
        system: SystemView {
            hostname,
            started_at: SystemTime::now(),
            started: Instant::now(),
            services: statuses.clone(),
            config_problems: Arc::new(config.problems.clone()),
            uplink: uplink_view,
            uplink_control,
            clock: clock_view,
        },
        leases: LeaseView { leases: lease_view, control: lease_control },
        forwards: forward_control,
        capture,
        diagnostics,
        perm: options.perm.clone(),
        restarter,
        update_confirm_window: config.settings.update_confirm_window.unwrap_or(api::update::DEFAULT_CONFIRM_WINDOW),
        listeners: Arc::new(endpoint.listeners),
    };
    supervisor.spawn("api", move |context| {
        let api_context = api_context.clone();
        async move { api::serve(api_context, context).await.map_err(Into::into) }
    });
    Ok(Running { listen_addrs: endpoint.listen_addrs, statuses, trigger, supervisor, restart })
}

/// The configuration under `--perm`; each file with a problem is logged and replaced by its defaults.
fn load_config(perm: &Path) -> Config {
    let config = Config::load(perm);
    for problem in &config.problems {
        tracing::error!("{}: {} (using defaults for this file until it is fixed)", problem.file, problem.message);
    }
    config
}

/// The management API's listeners and TLS, bound where the firewall at start allows.
struct ApiEndpoint {
    authority: Arc<Authority>,
    tls: Arc<TlsSource>,
    listeners: Vec<TcpListener>,
    listen_addrs: Vec<SocketAddr>,
}

fn bind_api(
    options: &Options,
    hostname: &str,
    firewall_at_start: &FirewallAtStart,
) -> Result<ApiEndpoint, DaemonError> {
    let authority = Arc::new(Authority::load_or_create(PkiPaths::new(&options.perm), hostname)?);
    let wanted = if options.listen.is_empty() { default_listen_addrs() } else { options.listen.clone() };
    let listeners = bind_all(&firewall_at_start.allowed(wanted))?;
    let listen_addrs: Vec<SocketAddr> = listeners.iter().filter_map(|l| l.local_addr().ok()).collect();
    tracing::info!(
        "management API bound to {}",
        listen_addrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    );
    let credentials = authority.server_credentials(&server_names(hostname, &listen_addrs))?;
    let tls = Arc::new(TlsSource::new(authority.clone(), credentials));
    tls.current()?;
    Ok(ApiEndpoint { authority, tls, listeners, listen_addrs })
}

/// Brings `--perm` to a consistent state before anything reads it: an interrupted restore or CA rotation is
/// finished or undone, stale temporary files go, and the clock is moved past its saved floor first of all (lease
/// timers anchor on it, certificates are checked against it).
fn settle_perm(perm: &Path) -> Result<(), DaemonError> {
    std::fs::create_dir_all(perm).map_err(|source| DaemonError::PermDir { path: perm.to_path_buf(), source })?;
    crate::timesync::floor::apply_at_start(perm, crate::timesync::owns_the_clock());
    if let Some(what) = crate::backup::restore::resume(perm) {
        tracing::warn!("{what}");
    }
    if let Some(what) = crate::backup::restore::on_start(perm) {
        tracing::warn!("{what}");
    }
    crate::store::remove_stale_temp_files(perm);
    if let Some(path) = crate::pki::rotation::remove_interrupted_rotation(perm) {
        tracing::warn!("removed {}: a CA rotation was interrupted before it changed anything", path.display());
    }
    Ok(())
}

/// Renames and configures the interfaces as interfaces.json says; `None` when netlink is not available.
async fn configure_interfaces(config: &Config) -> Option<Netconfig> {
    match Netconfig::connect() {
        Ok(netconfig) => {
            for problem in netconfig.apply_interfaces(&config.interfaces).await {
                tracing::warn!("{}: {problem}", crate::config::INTERFACES_JSON);
            }
            Some(netconfig)
        }
        Err(error) => {
            tracing::error!("{error}: interfaces cannot be configured");
            None
        }
    }
}

/// The trials that decide whether what changed before this start stays: an updated routerd, an updated system
/// slot, a restored backup.
fn start_trials(
    supervisor: &mut Supervisor,
    perm: &Path,
    hostname: &str,
    diagnostics: &crate::diag::Diagnostics,
    restarter: &Restarter,
) {
    if std::env::var_os(crate::update::TRIAL_ENV).is_some() {
        let (perm, diagnostics) = (perm.to_path_buf(), diagnostics.clone());
        supervisor.spawn("update-trial", move |context| {
            crate::update::trial::run(perm.clone(), diagnostics.clone(), context)
        });
    }
    if std::env::var_os("ROUTERD_INIT").is_some() {
        let running = crate::update::system::state::running_slot();
        if let Some(what) = crate::update::system::state::reconcile_at_start(perm, running) {
            tracing::warn!("{what}");
        }
        let on_trial = crate::update::system::state::SystemState::load(perm)
            .ok()
            .and_then(|s| s.trial)
            .is_some_and(|t| running.map(routerd_init::layout::Slot::name) == Some(t.to_slot.as_str()));
        if on_trial {
            let (perm, diagnostics, hostname) = (perm.to_path_buf(), diagnostics.clone(), hostname.to_string());
            supervisor.spawn("system-trial", move |context| {
                crate::update::system::trial::run(perm.clone(), hostname.clone(), diagnostics.clone(), context)
            });
        }
    }
    if crate::backup::restore::trial(perm).is_some() {
        let (perm, diagnostics, restarter) = (perm.to_path_buf(), diagnostics.clone(), restarter.clone());
        supervisor.spawn("restore-trial", move |context| {
            crate::backup::trial::run(perm.clone(), diagnostics.clone(), restarter.clone(), context)
        });
    }
}

/// What the LAN services watch besides their own state: the uplink's leases (DNS's upstream servers) and what
/// netconfig applied (the router's addresses, the house's own networks); `None` without an uplink or netlink.
struct LanViews {
    uplink: Option<watch::Receiver<UplinkSnapshot>>,
    applied: Option<watch::Receiver<crate::netconfig::Applied>>,
}

/// The DHCPv4 server on every LAN that has an IPv4 address in interfaces.json (and exists).
fn start_lan(
    supervisor: &mut Supervisor,
    options: &Options,
    config: &Config,
    hostname: &str,
    lease_table: watch::Sender<crate::lan::dhcp4d::LeaseSnapshot>,
    views: LanViews,
    metrics: Arc<crate::counters::Metrics>,
) -> Option<LeaseControl> {
    let LanViews { uplink, applied } = views;
    let pools = lan_pools(config);
    if pools.is_empty() {
        tracing::info!("no LAN interface with an IPv4 address: the DHCPv4 server is off");
        return None;
    }
    let dns = DnsOptions {
        lans: pools.iter().map(|p| p.interface.clone()).collect(),
        router_name: crate::lan::hostname::sanitize(hostname).unwrap_or_else(|| "router".to_string()),
        rebind_allowlist: config.routerd.dns_rebind_allowlist.clone(),
        upstreams: config.settings.dns_upstreams.clone(),
        metrics: metrics.clone(),
        cache_bytes: config.settings.dns_cache_bytes.unwrap_or(crate::lan::dns::cache::DEFAULT_BYTES),
        queries_per_device: config
            .settings
            .dns_queries_per_second_per_device
            .unwrap_or(crate::lan::dns::service::QUERIES_PER_SECOND_PER_DEVICE),
        waiting_per_device: config
            .settings
            .dns_waiting_per_device
            .unwrap_or(crate::lan::dns::service::WAITING_PER_DEVICE),
        applied,
    };
    let lease_view = lease_table.subscribe();
    supervisor.spawn("dns", move |context| {
        let (dns, leases, uplink) = (dns.clone(), lease_view.clone(), uplink.clone());
        async move { crate::lan::dns::service::run(dns, leases, uplink, context).await }
    });
    let (control, inbox) = LeaseControl::new();
    let perm = options.perm.clone();
    supervisor.spawn("dhcp4d", move |context| {
        let (perm, pools, lease_table, inbox) = (perm.clone(), pools.clone(), lease_table.clone(), inbox.clone());
        let metrics = metrics.clone();
        let server = crate::lan::dhcp4d::service::run(perm, pools, lease_table, inbox, metrics, context);
        crate::own_thread::run("dhcp4d", server)
    });
    Some(control)
}

/// A pool per LAN (`lanN`) with an IPv4 `addr`: its subnet, or the range routerd.json gives for it.
fn lan_pools(config: &Config) -> Vec<PoolConfig> {
    let mut pools = Vec::new();
    for interface in &config.interfaces.interfaces {
        if system::role_of(&interface.name) != system::Role::Lan || !system::interface_exists(&interface.name) {
            continue;
        }
        let Some((IpAddr::V4(addr), prefix_len)) = crate::config::parse_cidr(&interface.addr) else { continue };
        let Some(mut pool) = PoolConfig::whole_subnet(&interface.name, addr, prefix_len) else {
            tracing::warn!("{}: a /{prefix_len} has no room for DHCP clients", interface.name);
            continue;
        };
        if let Some(range) = config.routerd.dhcp_ranges.get(&interface.name) {
            match crate::config::parse_range(range) {
                Some((first, last)) if pool.contains_host(first) && pool.contains_host(last) => {
                    pool.first = first;
                    pool.last = last;
                }
                _ => tracing::error!(
                    "routerd.json: dhcp_ranges.{} {range:?} is not inside {addr}/{prefix_len}; using the whole subnet",
                    interface.name
                ),
            }
        }
        pools.push(pool);
    }
    pools
}

/// The capture of configuration traffic on the uplink and the LANs, for `rtrctl capture`.
fn start_capture(
    supervisor: &mut Supervisor,
    netconfig: Option<&Netconfig>,
    config: &Config,
) -> Option<crate::capture::service::CaptureHub> {
    let netconfig = netconfig.filter(|_| system::interface_exists(UPLINK))?.clone();
    let mut interfaces = vec![UPLINK.to_string()];
    interfaces.extend(system::lan_interfaces().into_iter().map(|(name, _)| name));
    let capacity = config.settings.capture_ring_packets.unwrap_or(crate::capture::ring::DEFAULT_CAPACITY);
    let hub = crate::capture::service::CaptureHub::new(interfaces, capacity);
    let shared = hub.clone();
    let dns_history = config.routerd.capture_dns_history.unwrap_or(false);
    supervisor.spawn("capture", move |context| {
        let (hub, netconfig) = (shared.clone(), netconfig.clone());
        async move { crate::capture::service::run(hub, netconfig, dns_history, context).await }
    });
    Some(hub)
}

/// The clock service; its status for the API and diagnostics.
fn start_timesync(
    supervisor: &mut Supervisor,
    options: &Options,
    config: &Config,
    uplink: watch::Receiver<UplinkSnapshot>,
) -> watch::Receiver<crate::timesync::ClockStatus> {
    let sets_system_clock = crate::timesync::owns_the_clock();
    let (status, view) = watch::channel(crate::timesync::ClockStatus::initial(sets_system_clock));
    let configured = config.settings.ntp_servers.clone();
    let perm = options.perm.clone();
    supervisor.spawn("clock", move |context| {
        let config = crate::timesync::service::TimesyncConfig {
            perm: perm.clone(),
            configured: configured.clone(),
            sets_system_clock,
        };
        crate::timesync::service::run(config, uplink.clone(), status.clone(), context)
    });
    view
}

/// The diagnostics tree's handle, and its periodic run for the health metric.
fn start_diagnostics(
    supervisor: &mut Supervisor,
    config: &Config,
    hostname: &str,
    uplink: watch::Receiver<UplinkSnapshot>,
    statuses: watch::Receiver<Statuses>,
    leases: watch::Receiver<crate::lan::dhcp4d::LeaseSnapshot>,
    clock: watch::Receiver<crate::timesync::ClockStatus>,
) -> crate::diag::Diagnostics {
    let settings = &config.settings;
    let targets = crate::diag::plan::Targets {
        tcp: settings.diagnostics_tcp_targets.clone(),
        dns_name: settings.diagnostics_dns_name.clone().unwrap_or_else(|| ".".to_string()),
        dns_upstreams: settings.dns_upstreams.clone(),
    };
    let pools = lan_pools(config);
    let lans = pools.iter().map(|pool| pool.interface.clone()).collect();
    let views = crate::diag::service::Views {
        uplink: system::interface_exists(UPLINK).then(|| (UPLINK.to_string(), uplink)),
        statuses,
        leases,
        clock,
    };
    let diagnostics = crate::diag::Diagnostics::new(
        views,
        lans,
        targets,
        crate::lan::hostname::sanitize(hostname).unwrap_or_else(|| "router".to_string()),
        pools,
    );
    let shared = diagnostics.clone();
    supervisor.spawn("diagnostics", move |context| crate::diag::service::run(shared.clone(), context));
    diagnostics
}

/// Prometheus metrics on port 8066 of the loopback and LAN addresses (or `--metrics-listen`). A port already
/// taken only costs the metrics, never the router.
fn start_metrics(
    supervisor: &mut Supervisor,
    options: &Options,
    collector: crate::metrics::collect::Collector,
    firewall_at_start: FirewallAtStart,
) {
    let wanted: Vec<SocketAddr> = if options.metrics_listen.is_empty() {
        default_listen_addrs().into_iter().map(|a| SocketAddr::new(a.ip(), crate::metrics::http::PORT)).collect()
    } else {
        options.metrics_listen.clone()
    };
    let listeners = match bind_all(&firewall_at_start.allowed(wanted)) {
        Ok(listeners) => Arc::new(listeners),
        Err(error) => {
            tracing::error!("metrics are off: {error}");
            return;
        }
    };
    supervisor
        .spawn("metrics", move |context| crate::metrics::http::serve(listeners.clone(), collector.clone(), context));
}

/// Where the firewall stood when the listeners were bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FirewallAtStart {
    /// No uplink: a development machine or the test suite, where nothing on the system is touched.
    NotARouter,
    /// The lockdown ruleset is loaded and forwarding is on.
    Locked,
    /// The kernel took no ruleset: forwarding is off and nothing listens beyond loopback.
    Failed,
}

impl FirewallAtStart {
    /// The addresses routerd may listen on: without a firewall only loopback ones (the LANs' global IPv6
    /// addresses would be open to the internet), and loopback on the same port when none was asked for.
    fn allowed(self, wanted: Vec<SocketAddr>) -> Vec<SocketAddr> {
        if self != FirewallAtStart::Failed {
            return wanted;
        }
        let (loopback, refused): (Vec<SocketAddr>, Vec<SocketAddr>) =
            wanted.into_iter().partition(|addr| addr.ip().is_loopback());
        if refused.is_empty() {
            return loopback;
        }
        tracing::error!(
            "without a firewall, not listening on {}",
            refused.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        );
        if loopback.is_empty() {
            let port = refused[0].port();
            return vec![
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
                SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port),
            ];
        }
        loopback
    }
}

/// On a router, at every start: the uplink's sysctls, then the lockdown ruleset, then forwarding, in this
/// order. When the kernel refuses the ruleset, forwarding is turned off (a previous run may have left it on).
fn lock_down(config: &Config) -> FirewallAtStart {
    use crate::firewall::{apply, ruleset::Ruleset};
    if !system::interface_exists(UPLINK) {
        return FirewallAtStart::NotARouter;
    }
    for problem in netconfig::prepare_uplink(UPLINK) {
        tracing::error!("{problem}");
    }
    match apply::apply(&Ruleset::lockdown(&firewall_input(config))) {
        Ok(loaded) => {
            tracing::info!("firewall: lockdown ruleset loaded (nothing new is forwarded until the full ruleset)");
            for problem in crate::firewall::forwarding::enable_forwarding(&loaded) {
                tracing::error!("{problem}");
            }
            tracing::info!("forwarding enabled");
            FirewallAtStart::Locked
        }
        Err(error) => {
            for problem in crate::firewall::forwarding::disable_forwarding() {
                tracing::error!("{problem}");
            }
            tracing::error!("firewall: {error}; forwarding stays off and the API and metrics listen on loopback only");
            FirewallAtStart::Failed
        }
    }
}

/// The ruleset's input without port forwards (the firewall service adds them).
fn firewall_input(config: &Config) -> crate::firewall::ruleset::RulesetInput {
    let lan_interfaces = config.interfaces.interfaces.iter().filter(|i| system::role_of(&i.name) == system::Role::Lan);
    let lans: Vec<String> = lan_interfaces.clone().map(|i| i.name.clone()).collect();
    let lan_networks = lan_interfaces
        .filter_map(|i| match crate::config::parse_cidr(&i.addr) {
            Some((IpAddr::V4(addr), len)) if (1..=32).contains(&len) => {
                let network = Ipv4Addr::from_bits(addr.to_bits() & (u32::MAX << (32 - u32::from(len))));
                Some((network, len, addr))
            }
            _ => None,
        })
        .collect();
    crate::firewall::ruleset::RulesetInput {
        uplink: UPLINK.to_string(),
        lans,
        lan_networks,
        forwards: Vec::new(),
        pinholes: config.settings.ipv6_pinholes.clone(),
        flowtable: false,
    }
}

/// The firewall service (NAT, filter, port forwards), only on a router: called with the uplink.
fn start_firewall(
    supervisor: &mut Supervisor,
    options: &Options,
    config: &Config,
    at_start: &FirewallAtStart,
) -> Option<ForwardControl> {
    use crate::firewall::service::Firewall;
    let loopback_only = match at_start {
        FirewallAtStart::NotARouter => return None,
        FirewallAtStart::Locked => false,
        FirewallAtStart::Failed => true,
    };
    let base = firewall_input(config);
    if base.lans.is_empty() {
        tracing::warn!("no LAN in interfaces.json: only the lockdown ruleset is loaded (nothing is forwarded)");
        return None;
    }
    let (control, inbox) = ForwardControl::new();
    let (perm, entries) = (options.perm.clone(), config.port_forwardings.forwardings.clone());
    supervisor.spawn("firewall", move |context| {
        let firewall = Firewall { perm: perm.clone(), loopback_only, base: base.clone(), entries: entries.clone() };
        let inbox = inbox.clone();
        async move { crate::firewall::service::run(firewall, inbox, context).await }
    });
    Some(control)
}

/// The uplink's services, when this machine has an uplink. Without an interface named `uplink0` (a development
/// machine, the test suite) nothing on the system is touched: no sysctls, no addresses, no routes.
fn start_uplink(
    supervisor: &mut Supervisor,
    netconfig: Netconfig,
    options: &Options,
    config: &Config,
    hostname: &str,
    uplink_state: watch::Sender<UplinkSnapshot>,
) -> UplinkControl {
    if !system::interface_exists(UPLINK) {
        tracing::info!("no interface named {UPLINK}: the uplink's DHCP clients are off");
        return UplinkControl::default();
    }
    let spoofed = config
        .interfaces
        .interfaces
        .iter()
        .find(|i| i.name == UPLINK)
        .and_then(|i| crate::config::parse_mac(&i.spoof_hardware_addr));
    let dhcp4 = Dhcp4Options {
        perm: options.perm.clone(),
        uplink: UPLINK.to_string(),
        hostname: Some(hostname.to_string()),
        hardware_addr: spoofed,
    };
    let (netconfig4, uplink_state4) = (netconfig.clone(), uplink_state.clone());
    let (control4, inbox4) = Control::new("dhcp4");
    supervisor.spawn("dhcp4", move |context| {
        let (dhcp4, netconfig, uplink_state) = (dhcp4.clone(), netconfig4.clone(), uplink_state4.clone());
        let inbox = inbox4.clone();
        async move { crate::uplink::dhcp4::service::run(dhcp4, netconfig, uplink_state, inbox, context).await }
    });
    let dhcp6 = Dhcp6Options { perm: options.perm.clone(), uplink: UPLINK.to_string(), hardware_addr: spoofed };
    let (netconfig6, uplink_state_ra) = (netconfig.clone(), uplink_state.clone());
    let (control6, inbox6) = Control::new("dhcp6");
    supervisor.spawn("dhcp6", move |context| {
        let (dhcp6, netconfig, uplink_state) = (dhcp6.clone(), netconfig.clone(), uplink_state.clone());
        let inbox = inbox6.clone();
        async move { crate::uplink::dhcp6::service::run(dhcp6, netconfig, uplink_state, inbox, context).await }
    });
    let lans = system::lan_interfaces();
    if !lans.is_empty() {
        let (netconfig_ra, uplink_view) = (netconfig6.clone(), uplink_state_ra.subscribe());
        supervisor.spawn("radvd", move |context| {
            let (lans, netconfig, uplink) = (lans.clone(), netconfig_ra.clone(), uplink_view.clone());
            async move { crate::lan::radvd::service::run(lans, netconfig, uplink, context).await }
        });
    }
    UplinkControl { dhcp4: Some(control4), dhcp6: Some(control6) }
}

/// Runs routerd until SIGTERM or SIGINT, or until a service asks for a restart. Kernel state (addresses,
/// routes, the firewall) stays as it is either way: the next start takes over from it.
pub async fn run(options: Options) -> Result<Stopped, DaemonError> {
    // Installed before anything starts, so a signal that arrives early still means a clean shutdown.
    let signals = ShutdownSignals::install();
    let running = start(options).await?;
    let mut restart = running.restart.clone();
    let stopped = tokio::select! {
        _ = signals.wait() => Stopped::Signal,
        Ok(_) = restart.wait_for(|asked| *asked) => Stopped::Restart,
    };
    tracing::info!("shutting down{}", if stopped == Stopped::Restart { " to start again" } else { "" });
    running.shutdown().await;
    Ok(stopped)
}

struct ShutdownSignals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignals {
    fn install() -> ShutdownSignals {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).inspect_err(|e| tracing::error!("cannot handle SIGTERM: {e}")).ok();
        let int = signal(SignalKind::interrupt()).inspect_err(|e| tracing::error!("cannot handle SIGINT: {e}")).ok();
        ShutdownSignals { term, int }
    }

    async fn wait(mut self) {
        async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) {
            match signal {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = recv(&mut self.term) => tracing::info!("received SIGTERM"),
            _ = recv(&mut self.int) => tracing::info!("received SIGINT"),
        }
    }
}

/// Port 9339 on every loopback and LAN address (never the uplink's). Link-local IPv6 addresses are left out:
/// they need a zone and clients reach the router by its LAN address anyway.
pub fn default_listen_addrs() -> Vec<SocketAddr> {
    let mut addrs = vec![
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), routerd_proto::DEFAULT_PORT),
        SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), routerd_proto::DEFAULT_PORT),
    ];
    match crate::sys::interfaces::addresses() {
        Ok(all) => {
            for (name, addr, _) in all {
                let link_local = matches!(addr, IpAddr::V6(v6) if v6.is_unicast_link_local());
                if system::role_of(&name) == system::Role::Lan && !link_local {
                    addrs.push(SocketAddr::new(addr, routerd_proto::DEFAULT_PORT));
                }
            }
        }
        Err(error) => tracing::warn!("listing interface addresses: {error}; listening on loopback only"),
    }
    addrs
}

fn bind_all(addrs: &[SocketAddr]) -> Result<Vec<TcpListener>, DaemonError> {
    let mut listeners = Vec::new();
    let mut failures = Vec::new();
    for addr in addrs {
        match TcpListener::bind(addr).and_then(|l| l.set_nonblocking(true).map(|()| l)) {
            Ok(listener) => listeners.push(listener),
            Err(error) => {
                tracing::warn!("cannot listen on {addr}: {error}");
                failures.push(format!("{addr}: {error}"));
            }
        }
    }
    if listeners.is_empty() {
        return Err(DaemonError::NoListener(failures.join("; ")));
    }
    Ok(listeners)
}

/// Names for the server certificate: the hostname, `localhost` and every address the API listens on.
fn server_names(hostname: &str, listen_addrs: &[SocketAddr]) -> BTreeSet<String> {
    let mut names = BTreeSet::from(["localhost".to_string()]);
    let valid_dns = !hostname.is_empty()
        && hostname.split('.').all(|label| {
            !label.is_empty() && label.len() <= 63 && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if valid_dns {
        names.insert(hostname.to_ascii_lowercase());
    }
    for addr in listen_addrs {
        if !addr.ip().is_unspecified() {
            names.insert(addr.ip().to_string());
        }
    }
    names
}
