//! SystemService: what the router is and what it is doing.

use std::{
    sync::Arc,
    time::{Instant, SystemTime},
};

use routerd_proto::v1::{self as pb, system_service_server::SystemService};
use tokio::sync::watch;

use crate::{
    config::ConfigProblem,
    supervisor::{ServiceState, Statuses},
    system,
    uplink::{
        control::{Answer, Command, Outcome, UplinkControl},
        state::UplinkSnapshot,
    },
};

/// Read-only views of the daemon's state that `GetStatus` reports.
#[derive(Clone)]
pub struct SystemView {
    pub hostname: String,
    pub started_at: SystemTime,
    pub started: Instant,
    pub services: watch::Receiver<Statuses>,
    pub config_problems: Arc<Vec<ConfigProblem>>,
    pub uplink: watch::Receiver<UplinkSnapshot>,
    pub uplink_control: UplinkControl,
    pub clock: watch::Receiver<crate::timesync::ClockStatus>,
}

pub(super) struct SystemApi {
    view: SystemView,
}

impl SystemApi {
    pub(super) fn new(view: SystemView) -> Self {
        SystemApi { view }
    }
}

/// Set by routerd-init (the appliance's PID 1) for the routerd it starts; the appliance's init takes SIGTERM as
/// "restart the machine" and SIGUSR2 as "power off".
const INIT_ENV: &str = "ROUTERD_INIT";

#[tonic::async_trait]
impl SystemService for SystemApi {
    async fn reboot(
        &self,
        request: tonic::Request<pb::RebootRequest>,
    ) -> Result<tonic::Response<pb::RebootResponse>, tonic::Status> {
        if std::env::var_os(INIT_ENV).is_none() {
            return Err(tonic::Status::failed_precondition(
                "this routerd was not started by the appliance's init (routerd-init), so it cannot restart the \
                 machine; restart it the way it was started",
            ));
        }
        let power_off = request.into_inner().power_off;
        let (signal, what) = if power_off { (libc::SIGUSR2, "power-off") } else { (libc::SIGTERM, "restart") };
        tracing::warn!("{what} of the machine asked for through the API");
        // After the answer has gone out: init stops routerd first.
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            // PID 1 is routerd-init, which asked for exactly these signals.
            if let Err(error) = crate::sys::process::signal(1, signal) {
                tracing::error!("signalling init for the {what}: {error}");
            }
        });
        Ok(tonic::Response::new(pb::RebootResponse {}))
    }

    async fn get_status(
        &self,
        _request: tonic::Request<pb::GetStatusRequest>,
    ) -> Result<tonic::Response<pb::GetStatusResponse>, tonic::Status> {
        let interfaces = system::interfaces()
            .map_err(|e| tonic::Status::internal(format!("listing network interfaces: {e}")))?
            .into_iter()
            .map(interface_to_proto)
            .collect();
        let services = self
            .view
            .services
            .borrow()
            .iter()
            .map(|(name, status)| pb::ServiceStatus {
                name: name.to_string(),
                state: service_state(status.state) as i32,
                message: status.message.clone(),
                restarts: status.restarts,
                since: Some(super::timestamp(status.since)),
            })
            .collect();
        let uptime = self.view.started.elapsed();
        Ok(tonic::Response::new(pb::GetStatusResponse {
            version: crate::update::running_version(),
            hostname: self.view.hostname.clone(),
            uptime: Some(prost_types::Duration {
                seconds: uptime.as_secs() as i64,
                nanos: uptime.subsec_nanos() as i32,
            }),
            started_at: Some(super::timestamp(self.view.started_at)),
            interfaces,
            uplink: Some(uplink_to_proto(&self.view.uplink.borrow())),
            clock: Some(clock_to_proto(&self.view.clock.borrow())),
            services,
            config_problems: self
                .view
                .config_problems
                .iter()
                .map(|p| pb::ConfigProblem { file: p.file.clone(), message: p.message.clone() })
                .collect(),
        }))
    }

    async fn release_uplink(
        &self,
        request: tonic::Request<pb::ReleaseUplinkRequest>,
    ) -> Result<tonic::Response<pb::ReleaseUplinkResponse>, tonic::Status> {
        let outcomes = self.to_uplink(request.into_inner().families, Command::Release).await?;
        let (results, clients) = uplink_results(&outcomes);
        Ok(tonic::Response::new(pb::ReleaseUplinkResponse { results, clients }))
    }

    async fn renew_uplink(
        &self,
        request: tonic::Request<pb::RenewUplinkRequest>,
    ) -> Result<tonic::Response<pb::RenewUplinkResponse>, tonic::Status> {
        let outcomes = self.to_uplink(request.into_inner().families, Command::Renew).await?;
        let (results, clients) = uplink_results(&outcomes);
        Ok(tonic::Response::new(pb::RenewUplinkResponse { results, clients }))
    }
}

impl SystemApi {
    async fn to_uplink(
        &self,
        families: Option<pb::UplinkFamilies>,
        command: Command,
    ) -> Result<Vec<Outcome>, tonic::Status> {
        let families = families.unwrap_or_default();
        let both = !families.ipv4 && !families.ipv6;
        let control = &self.view.uplink_control;
        let targets: Vec<_> = [(families.ipv4 || both, &control.dhcp4), (families.ipv6 || both, &control.dhcp6)]
            .into_iter()
            .filter_map(|(wanted, client)| client.as_ref().filter(|_| wanted))
            .collect();
        if targets.is_empty() {
            return Err(tonic::Status::failed_precondition(
                "this router has no uplink (no interface named uplink0), so no DHCP client runs",
            ));
        }
        let mut results = Vec::new();
        for client in targets {
            results.push(client.send(command).await);
        }
        Ok(results)
    }
}

/// The outcomes as lines of text and as typed results.
fn uplink_results(outcomes: &[Outcome]) -> (Vec<String>, Vec<pb::UplinkClientResult>) {
    let typed = outcomes
        .iter()
        .map(|outcome| {
            let (kind, lease) = match &outcome.answer {
                Some(Answer::Released(lease)) => (pb::UplinkOutcome::Released, lease.clone()),
                Some(Answer::NothingToRelease) => (pb::UplinkOutcome::NothingToRelease, String::new()),
                Some(Answer::Renewing) => (pb::UplinkOutcome::Renewing, String::new()),
                None => (pb::UplinkOutcome::NotRunning, String::new()),
            };
            pb::UplinkClientResult { client: outcome.client.to_string(), outcome: kind as i32, lease }
        })
        .collect();
    (outcomes.iter().map(ToString::to_string).collect(), typed)
}

fn clock_to_proto(status: &crate::timesync::ClockStatus) -> pb::ClockStatus {
    use crate::timesync::ClockState;
    pb::ClockStatus {
        state: match status.state {
            ClockState::NoServers => pb::ClockState::NoServers,
            ClockState::Unsynchronized => pb::ClockState::Unsynchronized,
            ClockState::Synchronized => pb::ClockState::Synchronized,
        } as i32,
        now: Some(super::timestamp(SystemTime::now())),
        sets_system_clock: status.sets_system_clock,
        servers: status.servers.iter().map(ToString::to_string).collect(),
        server: status.server.map(|s| s.to_string()).unwrap_or_default(),
        offset_seconds: status.offset_seconds,
        synchronized_at: status.synchronized_at.map(super::timestamp),
        last_error: status.last_error.clone().unwrap_or_default(),
    }
}

fn service_state(state: ServiceState) -> pb::ServiceState {
    match state {
        ServiceState::Starting => pb::ServiceState::Starting,
        ServiceState::Running => pb::ServiceState::Running,
        ServiceState::Restarting => pb::ServiceState::Restarting,
        ServiceState::Stopped => pb::ServiceState::Stopped,
        ServiceState::Disabled => pb::ServiceState::Disabled,
    }
}

fn interface_to_proto(info: system::InterfaceInfo) -> pb::Interface {
    let role = match system::role_of(&info.name) {
        system::Role::Uplink => pb::InterfaceRole::Uplink,
        system::Role::Lan => pb::InterfaceRole::Lan,
        system::Role::Other => pb::InterfaceRole::Other,
    };
    pb::Interface {
        role: role as i32,
        addrs: info.addrs.iter().map(|(addr, len)| format!("{addr}/{len}")).collect(),
        name: info.name,
        hardware_addr: info.hardware_addr,
        oper_state: info.oper_state,
        mtu: info.mtu,
    }
}

fn uplink_to_proto(snapshot: &UplinkSnapshot) -> pb::UplinkStatus {
    let time = |t: Option<std::time::SystemTime>| t.map(super::timestamp);
    pb::UplinkStatus {
        dhcp4: snapshot.dhcp4.as_ref().map(|status| pb::Dhcp4Lease {
            addr: format!("{}/{}", status.lease.address, status.lease.prefix_len),
            gateway: status.lease.gateway.map(|g| g.to_string()).unwrap_or_default(),
            dns_servers: status.lease.dns.iter().map(ToString::to_string).collect(),
            server_id: status.lease.server_id.map(|s| s.to_string()).unwrap_or_default(),
            bound_at: time(status.bound_at),
            renew_at: time(status.renew_at),
            rebind_at: time(status.rebind_at),
            expires_at: time(status.expires_at),
            state: status.phase.label().to_string(),
            client_state: super::uplink_client_state(status.phase) as i32,
        }),
        dhcp6: snapshot.dhcp6.as_ref().map(|status| pb::Dhcp6Lease {
            addr: status.lease.address.as_ref().map(|a| a.address.to_string()).unwrap_or_default(),
            prefixes: status.lease.prefixes.iter().map(|p| p.cidr()).collect(),
            dns_servers: status.lease.dns.iter().map(ToString::to_string).collect(),
            server_id: status.lease.server_id.iter().map(|b| format!("{b:02x}")).collect(),
            bound_at: time(status.bound_at),
            renew_at: time(status.renew_at),
            rebind_at: time(status.rebind_at),
            valid_until: time(status.expires_at),
            state: status.phase.label().to_string(),
            client_state: super::uplink_client_state(status.phase) as i32,
        }),
        ipv6_unavailable: snapshot.ipv6_unavailable.is_some(),
        ipv6_unavailable_reason: snapshot.ipv6_unavailable.clone().unwrap_or_default(),
    }
}
