//! Runs each service as its own task and restarts it, with exponential backoff, when it fails or panics.
//! One broken service never takes the daemon down. Service states are published on a watch channel for
//! `rtrctl status`.

use std::{
    collections::BTreeMap,
    future::Future,
    time::{Duration, SystemTime},
};

use tokio::{sync::watch, task::JoinSet, time::Instant};
use tracing::Instrument;

/// The error a service returns when it stops by failure; the supervisor only logs and reports it.
pub(crate) type ServiceError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceState {
    Starting,
    Running,
    /// Failed; waiting for the backoff to pass before the next start.
    Restarting,
    Stopped,
    /// Nothing to do with the current configuration.
    Disabled,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceStatus {
    pub state: ServiceState,
    pub message: String,
    pub restarts: u32,
    pub since: SystemTime,
}

pub(crate) type Statuses = BTreeMap<&'static str, ServiceStatus>;

/// Resolves once the daemon is shutting down.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// A trigger and the shutdown signal it controls.
    pub fn new() -> (watch::Sender<bool>, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (tx, Shutdown(rx))
    }

    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    pub async fn wait(&mut self) {
        // An error means the sender is gone, which also means shutting down.
        let _ = self.0.wait_for(|triggered| *triggered).await;
    }
}

/// What a running service gets: the shutdown signal and a way to report its state.
#[derive(Clone)]
pub struct ServiceContext {
    pub shutdown: Shutdown,
    name: &'static str,
    statuses: watch::Sender<Statuses>,
}

impl ServiceContext {
    /// Reports a state and message (for example `Disabled`, "no LAN interface has an address").
    pub fn report(&self, state: ServiceState, message: impl Into<String>) {
        let message = message.into();
        self.statuses.send_modify(|all| {
            if let Some(status) = all.get_mut(self.name)
                && (status.state != state || status.message != message)
            {
                status.state = state;
                status.message = message;
                status.since = SystemTime::now();
            }
        });
    }
}

/// Backoff between restarts: doubles from `initial` up to `max`, and starts over after a service ran
/// `healthy_after` without failing.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub healthy_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            healthy_after: Duration::from_secs(60),
        }
    }
}

pub(crate) struct Supervisor {
    statuses: watch::Sender<Statuses>,
    shutdown: Shutdown,
    tasks: JoinSet<()>,
    backoff: Backoff,
}

impl Supervisor {
    pub(crate) fn new(shutdown: Shutdown, backoff: Backoff) -> Supervisor {
        let (statuses, _) = watch::channel(Statuses::new());
        Supervisor { statuses, shutdown, tasks: JoinSet::new(), backoff }
    }

    pub(crate) fn statuses(&self) -> watch::Receiver<Statuses> {
        self.statuses.subscribe()
    }

    /// Starts the service `name`; `start` is called again for every restart.
    pub(crate) fn spawn<F, Fut>(&mut self, name: &'static str, mut start: F)
    where
        F: FnMut(ServiceContext) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), ServiceError>> + Send + 'static,
    {
        let statuses = self.statuses.clone();
        let mut shutdown = self.shutdown.clone();
        let backoff = self.backoff;
        statuses.send_modify(|all| {
            all.insert(
                name,
                ServiceStatus {
                    state: ServiceState::Starting,
                    message: String::new(),
                    restarts: 0,
                    since: SystemTime::now(),
                },
            );
        });
        let span = tracing::info_span!("service", name = %name);
        let supervise = async move {
            let mut delay = backoff.initial;
            let mut restarts = 0u32;
            loop {
                let context = ServiceContext { shutdown: shutdown.clone(), name, statuses: statuses.clone() };
                set_state(&statuses, name, ServiceState::Running, "", restarts);
                let started = Instant::now();
                let outcome = tokio::spawn(start(context).in_current_span()).await;
                if shutdown.is_triggered() {
                    set_state(&statuses, name, ServiceState::Stopped, "", restarts);
                    tracing::info!("stopped");
                    return;
                }
                let reason = match outcome {
                    Ok(Ok(())) => "exited unexpectedly".to_string(),
                    Ok(Err(error)) => format!("failed: {error}"),
                    Err(join_error) if join_error.is_panic() => {
                        format!("panicked: {}", panic_message(join_error.into_panic()))
                    }
                    Err(join_error) => format!("was cancelled: {join_error}"),
                };
                if started.elapsed() >= backoff.healthy_after {
                    delay = backoff.initial;
                }
                restarts += 1;
                tracing::warn!("{reason}; restarting in {} ms (restart {restarts})", delay.as_millis());
                set_state(&statuses, name, ServiceState::Restarting, &reason, restarts);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.wait() => {
                        set_state(&statuses, name, ServiceState::Stopped, &reason, restarts);
                        return;
                    }
                }
                delay = (delay * 2).min(backoff.max);
            }
        };
        self.tasks.spawn(supervise.instrument(span));
    }

    /// Waits until every service has stopped (after shutdown was triggered), at most `timeout`.
    pub(crate) async fn join(mut self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, async { while self.tasks.join_next().await.is_some() {} }).await.is_ok()
    }
}

fn set_state(
    statuses: &watch::Sender<Statuses>,
    name: &'static str,
    state: ServiceState,
    message: &str,
    restarts: u32,
) {
    statuses.send_modify(|all| {
        all.insert(name, ServiceStatus { state, message: message.to_string(), restarts, since: SystemTime::now() });
    });
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text.to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(no message)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    };

    use super::*;

    fn fast_backoff() -> Backoff {
        Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(40),
            healthy_after: Duration::from_secs(60),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn panicking_and_failing_services_are_restarted_and_others_keep_running() {
        let (trigger, shutdown) = Shutdown::new();
        let mut supervisor = Supervisor::new(shutdown, fast_backoff());
        let starts = Arc::new(AtomicU32::new(0));
        let counted = starts.clone();
        supervisor.spawn("flaky", move |mut ctx| {
            let attempt = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                match attempt {
                    0 => panic!("boom {attempt}"),
                    1 => Err("bad config".into()),
                    _ => {
                        ctx.report(ServiceState::Running, "steady");
                        ctx.shutdown.wait().await;
                        Ok(())
                    }
                }
            }
        });
        let steady_starts = Arc::new(AtomicU32::new(0));
        let steady_counted = steady_starts.clone();
        supervisor.spawn("steady", move |mut ctx| {
            steady_counted.fetch_add(1, Ordering::SeqCst);
            async move {
                ctx.shutdown.wait().await;
                Ok(())
            }
        });
        let mut statuses = supervisor.statuses();
        let flaky = statuses
            .wait_for(|all| all.get("flaky").is_some_and(|s| s.message == "steady"))
            .await
            .expect("statuses")
            .get("flaky")
            .cloned()
            .expect("flaky");
        assert_eq!(flaky.restarts, 2);
        assert_eq!(starts.load(Ordering::SeqCst), 3);
        assert_eq!(steady_starts.load(Ordering::SeqCst), 1);

        trigger.send(true).expect("trigger");
        assert!(supervisor.join(Duration::from_secs(5)).await);
        let all = statuses.borrow().clone();
        assert!(all.values().all(|s| s.state == ServiceState::Stopped), "{all:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn restart_reason_and_backoff_are_reported() {
        let (trigger, shutdown) = Shutdown::new();
        let mut supervisor = Supervisor::new(shutdown, fast_backoff());
        supervisor.spawn("broken", |_ctx| async { Err::<(), ServiceError>("cannot bind".into()) });
        let mut statuses = supervisor.statuses();
        let status = statuses
            .wait_for(|all| all.get("broken").is_some_and(|s| s.restarts >= 4 && s.state == ServiceState::Restarting))
            .await
            .expect("statuses")
            .get("broken")
            .cloned()
            .expect("broken");
        assert_eq!(status.message, "failed: cannot bind");
        trigger.send(true).expect("trigger");
        assert!(supervisor.join(Duration::from_secs(5)).await);
    }
}
