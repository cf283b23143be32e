//! The clock service: asks the NTP servers known now (routerd.json's, then the ISP's) one after the other until
//! one gives a good answer; on the appliance it then sets the system clock (when it is off by more than half a
//! second), writes the hardware clock and moves the floor in /perm. Every hour after a good answer, every 64 s
//! while none came.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::{Duration, SystemTime},
};

use tokio::{net::UdpSocket, sync::watch, time::Instant};

use super::{ClockState, ClockStatus, floor, sntp};
use crate::{
    supervisor::{ServiceContext, ServiceError, ServiceState},
    uplink::state::UplinkSnapshot,
};

const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);
const RETRY: Duration = Duration::from_secs(64);
const RESYNC: Duration = Duration::from_secs(3600);
/// Smaller offsets are left alone (a step back and forth by milliseconds helps no one).
const STEP_THRESHOLD_SECONDS: f64 = 0.5;

pub struct TimesyncConfig {
    pub perm: PathBuf,
    /// routerd.json `ntp_servers`.
    pub configured: Vec<IpAddr>,
    pub sets_system_clock: bool,
}

/// routerd.json's servers first, then the ISP's (DHCPv4, DHCPv6), each once.
pub fn servers(configured: &[IpAddr], uplink: &UplinkSnapshot) -> Vec<IpAddr> {
    let from_v4 = uplink.dhcp4.iter().flat_map(|s| s.lease.ntp.iter().map(|a| IpAddr::V4(*a)));
    let from_v6 = uplink.dhcp6.iter().flat_map(|s| s.lease.ntp.iter().map(|a| IpAddr::V6(*a)));
    let mut all: Vec<IpAddr> = Vec::new();
    for server in configured.iter().copied().chain(from_v4).chain(from_v6) {
        if !all.contains(&server) {
            all.push(server);
        }
    }
    all
}

pub async fn run(
    config: TimesyncConfig,
    mut uplink: watch::Receiver<UplinkSnapshot>,
    status: watch::Sender<ClockStatus>,
    mut context: ServiceContext,
) -> Result<(), ServiceError> {
    let what = if config.sets_system_clock { "setting the clock" } else { "measuring the clock (the host sets it)" };
    context.report(ServiceState::Running, what.to_string());
    let mut next = Instant::now();
    loop {
        let known = servers(&config.configured, &uplink.borrow_and_update());
        if status.borrow().servers != known {
            let shown: Vec<String> = known.iter().map(ToString::to_string).collect();
            tracing::info!("clock: NTP servers {}", if shown.is_empty() { "none".into() } else { shown.join(", ") });
        }
        status.send_modify(|s| {
            s.servers = known.clone();
            if known.is_empty() {
                s.state = ClockState::NoServers;
            } else if s.state == ClockState::NoServers {
                s.state = ClockState::Unsynchronized;
            }
        });
        if !known.is_empty() && Instant::now() >= next {
            next = Instant::now() + synchronise(&config, &known, &status).await;
        }
        tokio::select! {
            _ = context.shutdown.wait() => return Ok(()),
            _ = tokio::time::sleep_until(next), if !known.is_empty() => {}
            changed = uplink.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                // New servers from the ISP: ask them now unless the clock is already good.
                let now_known = servers(&config.configured, &uplink.borrow());
                if now_known != known && status.borrow().state != ClockState::Synchronized {
                    next = Instant::now();
                }
            }
        }
    }
}

/// One round over `servers`; how long until the next.
async fn synchronise(config: &TimesyncConfig, servers: &[IpAddr], status: &watch::Sender<ClockStatus>) -> Duration {
    let mut errors = Vec::new();
    for server in servers {
        let sample = match ask(*server).await {
            Ok(sample) => sample,
            Err(error) => {
                errors.push(format!("{server}: {error}"));
                continue;
            }
        };
        let corrected = if config.sets_system_clock { correct(config, *server, sample.offset_seconds) } else { None };
        status.send_modify(|s| {
            s.state = ClockState::Synchronized;
            s.server = Some(*server);
            s.offset_seconds = sample.offset_seconds;
            s.synchronized_at = Some(SystemTime::now());
            s.last_error = corrected;
        });
        return RESYNC;
    }
    let error = errors.join("; ");
    tracing::warn!("clock: no NTP server answered well: {error}");
    status.send_modify(|s| {
        if s.state != ClockState::Synchronized {
            s.state = ClockState::Unsynchronized;
        }
        s.last_error = Some(error);
    });
    RETRY
}

/// Sets the system clock (when off by more than the threshold) and the hardware clock, and moves the floor;
/// what failed, if anything.
fn correct(config: &TimesyncConfig, server: IpAddr, offset_seconds: f64) -> Option<String> {
    let mut problems = Vec::new();
    if offset_seconds.abs() > STEP_THRESHOLD_SECONDS {
        let now = SystemTime::now();
        let step = Duration::from_secs_f64(offset_seconds.abs());
        let target = if offset_seconds > 0.0 { now + step } else { now - step };
        match crate::sys::clock::set_system_clock(target) {
            Ok(()) => tracing::warn!("clock: set from {server}, which was {offset_seconds:+.3} s off"),
            Err(error) => problems.push(format!("setting the system clock: {error}")),
        }
    } else {
        tracing::info!("clock: {server} agrees within {offset_seconds:+.3} s");
    }
    if let Err(error) = crate::sys::clock::set_hardware_clock(SystemTime::now()) {
        problems.push(format!("setting the hardware clock: {error}"));
    }
    if let Err(error) = floor::save(&config.perm, SystemTime::now()) {
        problems.push(format!("saving {}: {error}", floor::CLOCK_JSON));
    }
    for problem in &problems {
        tracing::warn!("clock: {problem}");
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// One SNTP exchange with `server`.
async fn ask(server: IpAddr) -> Result<sntp::Sample, String> {
    let local: SocketAddr = if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().map_err(|_| "address")?;
    let socket = UdpSocket::bind(local).await.map_err(|e| format!("a socket: {e}"))?;
    socket.connect((server, sntp::NTP_PORT)).await.map_err(|e| format!("no route: {e}"))?;
    let mut nonce = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce).map_err(|_| "no randomness")?;
    let nonce = u64::from_be_bytes(nonce);
    let sent = SystemTime::now();
    socket.send(&sntp::request(nonce)).await.map_err(|e| format!("sending: {e}"))?;
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    let mut buffer = [0u8; 512];
    loop {
        let received = tokio::time::timeout_at(deadline, socket.recv(&mut buffer))
            .await
            .map_err(|_| format!("no answer within {} s", ANSWER_TIMEOUT.as_secs()))?
            .map_err(|e| format!("receiving: {e}"))?;
        match sntp::parse_reply(&buffer[..received], nonce, sent, SystemTime::now()) {
            // Not the answer to this request (a late one, or a forgery): keep waiting for ours.
            Err(sntp::SntpError::NotOurs) => continue,
            other => return other.map_err(|e| e.to_string()),
        }
    }
}
