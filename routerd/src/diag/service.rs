//! The diagnostics handle the API, the metrics and the periodic check share: gathers facts, plans and
//! evaluates the tree, and keeps the last report.

use std::{
    net::IpAddr,
    str::FromStr,
    sync::Arc,
    time::{Duration, SystemTime},
};

use hickory_proto::{
    op::Query,
    rr::{Name, RData, RecordType},
};
use tokio::sync::watch;

use super::{
    facts,
    plan::{self, Facts, Targets},
    probe::NetworkProber,
    tree::{self, Decided, Report},
};
use crate::{
    supervisor::{ServiceContext, ServiceError, ServiceState, Statuses},
    uplink::state::UplinkSnapshot,
};

/// How often the tree is evaluated without anyone asking (for the health metric).
pub(crate) const PERIOD: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct Diagnostics {
    inner: Arc<Inner>,
}

/// The state the checks look at, as the services publish it.
pub struct Views {
    /// `None` on a machine without an uplink.
    pub uplink: Option<(String, watch::Receiver<UplinkSnapshot>)>,
    pub statuses: watch::Receiver<Statuses>,
    /// The lease table, for the free-address checks.
    pub leases: watch::Receiver<crate::lan::dhcp4d::LeaseSnapshot>,
    pub clock: watch::Receiver<crate::timesync::ClockStatus>,
}

struct Inner {
    views: Views,
    lans: Vec<String>,
    targets: Targets,
    router_name: String,
    last: watch::Sender<Option<Arc<Report>>>,
    /// The LANs' DHCPv4 pools.
    pools: Vec<crate::lan::dhcp4d::PoolConfig>,
}

impl Diagnostics {
    pub fn new(
        views: Views,
        lans: Vec<String>,
        targets: Targets,
        router_name: String,
        pools: Vec<crate::lan::dhcp4d::PoolConfig>,
    ) -> Diagnostics {
        let (last, _) = watch::channel(None);
        Diagnostics { inner: Arc::new(Inner { views, lans, targets, router_name, last, pools }) }
    }

    /// The latest report, from whichever evaluation ran last.
    pub fn last(&self) -> watch::Receiver<Option<Arc<Report>>> {
        self.inner.last.subscribe()
    }

    fn facts(&self) -> Facts {
        let statuses = self.inner.views.statuses.borrow().clone();
        let state = |name: &str| statuses.get(name).map(|s| s.state);
        Facts {
            now: Some(SystemTime::now()),
            uplink: self.inner.views.uplink.as_ref().map(|(name, view)| facts::uplink(name, view.borrow().clone())),
            lans: self
                .inner
                .lans
                .iter()
                .map(|lan| {
                    let leases = self.inner.views.leases.borrow();
                    let pool = self.inner.pools.iter().find(|p| &p.interface == lan);
                    let usage = pool.map(|p| p.usage(leases.iter(), crate::clock::now()));
                    facts::lan(lan, state("dhcp4d"), state("radvd"), usage)
                })
                .collect(),
            targets: self.inner.targets.clone(),
            router_name: self.inner.router_name.clone(),
            firewall: statuses.get("firewall").map(|s| (facts::state_name(s.state), s.message.clone())),
            clock: facts::clock(&self.inner.views.clock.borrow(), SystemTime::now()),
        }
    }

    /// Evaluates the tree now, handing out each node as it is decided.
    pub async fn evaluate(&self, emit: impl FnMut(&Decided)) -> Arc<Report> {
        let plan = plan::plan(&self.facts());
        let report = Arc::new(tree::evaluate(&plan, &NetworkProber, emit).await);
        self.inner.last.send_replace(Some(report.clone()));
        report
    }

    /// An address for `destination`: the literal itself, or the name resolved through the upstream servers
    /// (IPv4 first unless `ipv6`).
    pub async fn resolve(&self, destination: &str, ipv6: Option<bool>) -> Result<IpAddr, String> {
        if let Ok(address) = destination.parse::<IpAddr>() {
            return Ok(address);
        }
        let name = Name::from_str(&format!("{}.", destination.trim_end_matches('.')))
            .map_err(|e| format!("{destination:?} is neither an address nor a DNS name: {e}"))?;
        let servers: Vec<std::net::SocketAddr> = self.upstream_servers().into_iter().map(|a| (a, 53).into()).collect();
        let kinds = match ipv6 {
            Some(true) => vec![RecordType::AAAA],
            Some(false) => vec![RecordType::A],
            None => vec![RecordType::A, RecordType::AAAA],
        };
        for kind in kinds {
            let query = Query::query(name.clone(), kind);
            let response = crate::lan::dns::upstream::resolve(&servers, &query).await.map_err(|e| e.to_string())?;
            let found = response.answers.iter().find_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                _ => None,
            });
            if let Some(address) = found {
                return Ok(address);
            }
        }
        Err(format!("{destination} has no address (asked {servers:?})"))
    }

    fn upstream_servers(&self) -> Vec<IpAddr> {
        if !self.inner.targets.dns_upstreams.is_empty() {
            return self.inner.targets.dns_upstreams.clone();
        }
        let Some((_, view)) = &self.inner.views.uplink else { return Vec::new() };
        let snapshot = view.borrow();
        let v4 = snapshot.dhcp4.iter().flat_map(|s| s.lease.dns.iter().map(|a| IpAddr::V4(*a)));
        let v6 = snapshot.dhcp6.iter().flat_map(|s| s.lease.dns.iter().map(|a| IpAddr::V6(*a)));
        v4.chain(v6).collect()
    }
}

/// Evaluates the tree every [`PERIOD`] and logs changes of health, so the metric and the log stay current.
pub(crate) async fn run(diagnostics: Diagnostics, mut context: ServiceContext) -> Result<(), ServiceError> {
    context.report(ServiceState::Running, format!("checking every {} s", PERIOD.as_secs()));
    let mut healthy = None;
    loop {
        // The first run waits a little: right after start the uplink has no lease yet.
        tokio::select! {
            _ = context.shutdown.wait() => return Ok(()),
            _ = tokio::time::sleep(if healthy.is_none() { Duration::from_secs(10) } else { PERIOD }) => {}
        }
        let report = diagnostics.evaluate(|_| {}).await;
        if healthy != Some(report.healthy()) {
            if report.healthy() {
                tracing::info!("diagnostics: {}", report.summary());
            } else {
                tracing::warn!("diagnostics: {}", report.summary());
            }
            healthy = Some(report.healthy());
        }
    }
}
