//! The keeper: `routerd run` is this small parent process, and the daemon is its child (`routerd serve`). The
//! keeper starts the binary `update/state.json` names, restarts the daemon when it asks to (exit status 75:
//! an update or a restore), restarts it with backoff when it crashes, and rolls a new version back when it
//! exits before confirming itself or does not confirm before its deadline. It holds no sockets and touches no
//! kernel state, so the router keeps forwarding while the daemon changes underneath.
//!
//! It forwards SIGTERM and SIGINT to the daemon and exits with it. The daemon gets SIGTERM if the keeper dies.

use std::{
    ffi::OsString,
    path::PathBuf,
    process::{Child, Command, ExitStatus},
    time::{Duration, Instant},
};

use super::{ARTIFACT_ENV, KEEPER_ENV, RESTART_EXIT_CODE, TRIAL_ENV, state::UpdateState};
use crate::sys;

pub struct Keeper {
    pub perm: PathBuf,
    /// The installed routerd (the keeper's own executable): what runs when nothing was uploaded.
    pub installed: PathBuf,
    /// Arguments for the daemon (`serve --perm …`).
    pub child_args: Vec<OsString>,
}

enum Ended {
    /// The daemon asked to be started again.
    Restart,
    Exited(ExitStatus),
    /// The keeper was told to stop; the daemon's exit status.
    Terminated(i32),
    TrialExpired(u64),
}

const POLL: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

fn terminated() -> bool {
    sys::process::termination_signal().is_some()
}

/// Sleeps, waking early when the keeper is told to stop.
fn sleep_unless_terminated(duration: Duration) {
    let until = Instant::now() + duration;
    while !terminated() && Instant::now() < until {
        std::thread::sleep(POLL);
    }
}

/// `signal` (SIGTERM, or the one the keeper got), then SIGKILL after `grace`; the exit status.
fn stop(child: &mut Child, grace: Duration, signal: libc::c_int) -> Option<ExitStatus> {
    // Our own child's PID stays reserved until we reap it.
    let _ = sys::process::signal(child.id() as i32, signal);
    let until = Instant::now() + grace;
    while Instant::now() < until {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(POLL);
    }
    tracing::warn!("keeper: routerd did not stop within {} s; killing it", grace.as_secs());
    let _ = child.kill();
    child.wait().ok()
}

fn spawn(keeper: &Keeper, binary: &PathBuf, artifact_sha256: Option<&str>, trial: bool) -> std::io::Result<Child> {
    let mut command = Command::new(binary);
    command.args(&keeper.child_args).env(KEEPER_ENV, std::process::id().to_string());
    match artifact_sha256 {
        Some(sha256) => command.env(ARTIFACT_ENV, sha256),
        None => command.env_remove(ARTIFACT_ENV),
    };
    if trial {
        command.env(TRIAL_ENV, "1");
    } else {
        command.env_remove(TRIAL_ENV);
    }
    sys::process::terminate_with_parent(&mut command);
    command.spawn()
}

fn watch(keeper: &Keeper, child: &mut Child, mut trial: bool) -> Ended {
    let started = Instant::now();
    let mut last_check = Instant::now();
    loop {
        if terminated() {
            let status =
                stop(child, Duration::from_secs(20), sys::process::termination_signal().unwrap_or(libc::SIGTERM));
            return Ended::Terminated(status.and_then(|s| s.code()).unwrap_or(0));
        }
        match child.try_wait() {
            Ok(Some(status)) if status.code() == Some(RESTART_EXIT_CODE) => return Ended::Restart,
            Ok(Some(status)) => return Ended::Exited(status),
            Ok(None) => {}
            Err(error) => tracing::error!("keeper: waiting for routerd: {error}"),
        }
        if trial && last_check.elapsed() >= Duration::from_millis(250) {
            last_check = Instant::now();
            match UpdateState::load(&keeper.perm) {
                Ok(state) if state.trial.is_none() => trial = false,
                Ok(state) if state.trial_expired(started.elapsed()) => {
                    let window = state.trial.as_ref().map(|t| t.confirm_window_seconds).unwrap_or(0);
                    stop(child, Duration::from_secs(10), libc::SIGTERM);
                    return Ended::TrialExpired(window);
                }
                Ok(_) => {}
                Err(error) => tracing::error!("keeper: {error}"),
            }
        }
        std::thread::sleep(POLL);
    }
}

fn roll_back(keeper: &Keeper, reason: String) {
    match UpdateState::load(&keeper.perm) {
        Ok(mut state) => {
            if let Ok(trial) = state.roll_back(reason.clone()) {
                tracing::error!("keeper: rolling back from {}: {reason}", trial.artifact.version);
            }
            if let Err(error) = state.save(&keeper.perm) {
                tracing::error!("keeper: recording the rollback: {error}");
            }
        }
        Err(error) => tracing::error!("keeper: {error}"),
    }
}

/// A daemon that fails this soon after the keeper's first start has a problem a restart will not fix (a port
/// in use, an unreadable `--perm`): the keeper exits with its status instead of trying again.
const FIRST_START_GRACE: Duration = Duration::from_secs(5);

/// Runs the daemon until the keeper is told to stop; returns the exit status for the keeper.
pub fn run(keeper: Keeper) -> i32 {
    sys::process::catch_termination();
    let mut backoff = Duration::from_secs(1);
    let mut first_start = true;
    loop {
        if terminated() {
            return 0;
        }
        let state = UpdateState::load(&keeper.perm).unwrap_or_else(|error| {
            tracing::error!("keeper: {error}; starting the installed routerd");
            UpdateState::default()
        });
        let (mut binary, mut artifact, trial) = state.next_binary(&keeper.installed);
        if let Some(expected) = &artifact {
            match super::sha256_file(&binary) {
                Ok(sha256) if sha256 == expected.sha256 => {}
                found => {
                    let problem = format!("{} changed on disk or is gone ({found:?})", binary.display());
                    if trial {
                        roll_back(&keeper, problem);
                        continue;
                    }
                    tracing::error!("keeper: {problem}; starting the installed routerd");
                    (binary, artifact) = (keeper.installed.clone(), None);
                }
            }
        }
        let version = artifact.as_ref().map(|a| a.version.clone()).unwrap_or_else(|| "installed".into());
        let mut child = match spawn(&keeper, &binary, artifact.as_ref().map(|a| a.sha256.as_str()), trial) {
            Ok(child) => child,
            Err(error) if trial => {
                roll_back(&keeper, format!("the new version could not start: {error}"));
                continue;
            }
            Err(error) => {
                tracing::error!(
                    "keeper: starting {}: {error}; trying again in {} s",
                    binary.display(),
                    backoff.as_secs()
                );
                sleep_unless_terminated(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        tracing::info!(
            "keeper: routerd {version} running as PID {}{}",
            child.id(),
            if trial { " (on trial: it must report healthy before its deadline)" } else { "" }
        );
        let started = Instant::now();
        let first = std::mem::replace(&mut first_start, false);
        match watch(&keeper, &mut child, trial) {
            Ended::Terminated(code) => return code,
            Ended::Restart => backoff = Duration::from_secs(1),
            Ended::TrialExpired(window) => {
                roll_back(&keeper, format!("the new version did not report healthy within {window} s"));
            }
            Ended::Exited(status) => {
                let still_on_trial = UpdateState::load(&keeper.perm).is_ok_and(|s| s.trial.is_some());
                if still_on_trial {
                    let after = started.elapsed().as_secs_f64();
                    roll_back(&keeper, format!("the new version exited {after:.1} s after it started ({status})"));
                    continue;
                }
                if first && artifact.is_none() && started.elapsed() < FIRST_START_GRACE && !status.success() {
                    return status.code().unwrap_or(1);
                }
                if started.elapsed() > MAX_BACKOFF {
                    backoff = Duration::from_secs(1);
                }
                tracing::error!("keeper: routerd exited ({status}); starting it again in {} s", backoff.as_secs());
                sleep_unless_terminated(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
