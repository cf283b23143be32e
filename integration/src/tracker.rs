//! Everything a lab created — namespaces and processes — so that all of it is removed again: on drop, on a
//! panic, on Ctrl-C, or later by `lab down` from the saved [`Inventory`].

use std::{
    collections::BTreeMap,
    fs,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Stdio},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use crate::{
    command,
    error::{IoContext, LabError},
    netns::Netns,
};

/// How long a process gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// What a lab owns, in a form that can be saved for `lab down`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Inventory {
    /// In creation order; removed in reverse.
    pub namespaces: Vec<String>,
    pub processes: Vec<ProcessRecord>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProcessRecord {
    pub name: String,
    pub pid: u32,
    pub namespace: String,
    pub log: PathBuf,
}

#[derive(Default)]
struct State {
    inventory: Inventory,
    /// Our own children, so they are reaped and their PIDs cannot be reused while we hold them.
    children: BTreeMap<u32, Child>,
    /// The lab's files (configurations, logs, leases), removed last.
    dirs: Vec<PathBuf>,
}

/// Shared by the lab, its peers, and the Ctrl-C handler of `lab`.
#[derive(Clone, Default)]
pub struct Tracker {
    state: Arc<Mutex<State>>,
    /// Held for a whole teardown, so that a second one (the lab's drop racing a Ctrl-C handler) returns only
    /// when everything is gone, not as soon as it finds the lists emptied by the first.
    teardown: Arc<Mutex<()>>,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("Tracker")
            .field("namespaces", &state.inventory.namespaces)
            .field("processes", &state.inventory.processes.len())
            .finish()
    }
}

impl Tracker {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; teardown must still run.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Removes `dir` at the end of the teardown, unless `ROUTERD_LAB_KEEP` is set (to read the logs afterwards).
    pub fn own_dir(&self, dir: &Path) {
        self.lock().dirs.push(dir.to_path_buf());
    }

    pub fn create_namespace(&self, name: &str, dad: bool) -> Result<Netns, LabError> {
        // Recorded first: if configuring it fails half-way, teardown still removes it.
        self.lock().inventory.namespaces.push(name.to_string());
        Netns::create(name, dad)
    }

    /// Starts `program ARGS…` inside `netns` with stdout and stderr going to `log`. The process gets its own process
    /// group (a Ctrl-C on the terminal reaches only `lab`, which then stops everything in order) and a clean signal
    /// mask (`lab` blocks the signals it waits for, and a mask survives exec).
    pub fn spawn(
        &self,
        name: &str,
        netns: &Netns,
        program: &Path,
        args: &[String],
        env: &[(&str, String)],
        log: &Path,
    ) -> Result<u32, LabError> {
        let log_file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .context(|| format!("opening the log {}", log.display()))?;
        let log_err = log_file.try_clone().context(|| format!("opening the log {}", log.display()))?;
        let mut command = netns.command(program);
        command.args(args).stdin(Stdio::null()).stdout(log_file).stderr(log_err).process_group(0);
        for (key, value) in env {
            command.env(key, value);
        }
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(|| {
                let mut empty: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut empty);
                libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
                Ok(())
            });
        }
        let child = command.spawn().context(|| format!("starting {name}: `{}`", command::describe(&command)))?;
        let pid = child.id();
        let mut state = self.lock();
        state.inventory.processes.push(ProcessRecord {
            name: name.to_string(),
            pid,
            namespace: netns.name().to_string(),
            log: log.to_path_buf(),
        });
        state.children.insert(pid, child);
        Ok(pid)
    }

    /// `Some(status)` when our child `pid` has exited.
    pub fn exit_status(&self, pid: u32) -> Option<String> {
        let mut state = self.lock();
        match state.children.get_mut(&pid).map(|child| child.try_wait()) {
            Some(Ok(Some(status))) => Some(status.to_string()),
            Some(Ok(None)) => None,
            Some(Err(error)) => Some(format!("unknown: {error}")),
            None => (!is_alive(pid)).then(|| "exited".to_string()),
        }
    }

    /// Stops one process (SIGTERM, then SIGKILL after a grace period) and forgets it.
    pub fn stop(&self, pid: u32) {
        let (record, child) = {
            let mut state = self.lock();
            let index = state.inventory.processes.iter().position(|p| p.pid == pid);
            let record = index.map(|i| state.inventory.processes.remove(i));
            (record, state.children.remove(&pid))
        };
        match (child, record) {
            (Some(child), _) => stop_child(child),
            (None, Some(record)) => stop_foreign(&record),
            (None, None) => {}
        }
    }

    pub fn processes(&self) -> Vec<ProcessRecord> {
        self.lock().inventory.processes.clone()
    }

    pub fn inventory(&self) -> Inventory {
        self.lock().inventory.clone()
    }

    /// Adopts an inventory saved by another `lab` process, to tear it down.
    pub fn adopt(inventory: Inventory) -> Tracker {
        let tracker = Tracker::default();
        tracker.lock().inventory = inventory;
        tracker
    }

    /// Stops every process (newest first), then anything else still running in our namespaces, then removes the
    /// namespaces. Idempotent; errors are collected, not fatal, so one failure does not leave the rest behind.
    pub fn teardown(&self) -> Vec<String> {
        let _one_at_a_time = self.teardown.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut problems = Vec::new();
        let (records, mut children, namespaces, dirs) = {
            let mut state = self.lock();
            let records = std::mem::take(&mut state.inventory.processes);
            let children = std::mem::take(&mut state.children);
            let namespaces = std::mem::take(&mut state.inventory.namespaces);
            (records, children, namespaces, std::mem::take(&mut state.dirs))
        };
        for record in records.iter().rev() {
            match children.remove(&record.pid) {
                Some(child) => stop_child(child),
                None => stop_foreign(record),
            }
        }
        for name in namespaces.iter().rev() {
            let netns = Netns::existing(name);
            // Whatever our processes started in our namespaces (a DHCP client's script, a hook) is ours too.
            for pid in netns.pids() {
                if netns.contains_pid(pid) {
                    terminate(pid);
                }
            }
            let deadline = Instant::now() + STOP_GRACE;
            while netns.pids().iter().any(|&pid| is_alive(pid)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            for pid in netns.pids() {
                if netns.contains_pid(pid) && is_alive(pid) {
                    send_signal(pid, libc::SIGKILL);
                }
            }
            if let Err(error) = netns.delete() {
                problems.push(error.to_string());
            }
        }
        for dir in dirs.iter().filter(|dir| dir.exists()) {
            if std::env::var_os("ROUTERD_LAB_KEEP").is_some() {
                eprintln!("lab: files kept in {} (ROUTERD_LAB_KEEP is set)", dir.display());
            } else if let Err(error) = remove_dir_settled(dir) {
                problems.push(format!("removing {}: {error}", dir.display()));
            }
        }
        problems
    }
}

/// Removes a directory, again if something still running (an interrupted demo's last step) wrote into it while
/// it was being removed, until it stays gone for a moment.
fn remove_dir_settled(dir: &std::path::Path) -> std::io::Result<()> {
    let mut last = Ok(());
    for _ in 0..20 {
        last = match fs::remove_dir_all(dir) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        };
        std::thread::sleep(Duration::from_millis(50));
        if last.is_ok() && !dir.exists() {
            return Ok(());
        }
    }
    last
}

fn stop_child(mut child: Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    terminate(child.id());
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Stops a process another `lab` started: only if it still runs in the namespace we recorded (its PID may have
/// been reused since).
fn stop_foreign(record: &ProcessRecord) {
    let netns = Netns::existing(&record.namespace);
    if !netns.contains_pid(record.pid) || !is_alive(record.pid) {
        return;
    }
    terminate(record.pid);
    let deadline = Instant::now() + STOP_GRACE;
    while is_alive(record.pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    if is_alive(record.pid) && netns.contains_pid(record.pid) {
        send_signal(record.pid, libc::SIGKILL);
    }
}

fn terminate(pid: u32) {
    send_signal(pid, libc::SIGTERM);
}

/// Sends `signal` to `pid` (a process this lab started).
pub fn send_signal(pid: u32, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill has no memory effects; a stale PID yields ESRCH.
        unsafe { libc::kill(pid, signal) };
    }
}

/// Whether `pid` exists and is not a zombie (an orphan whose parent never reaps it still has a /proc entry).
pub fn is_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may contain spaces.
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

/// The last `lines` lines of a log file, for failure messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_missing_one_is_not() {
        assert!(is_alive(std::process::id()));
        assert!(!is_alive(u32::MAX - 1));
    }

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("log");
        fs::write(&path, "one\ntwo\nthree\n").expect("write");
        assert_eq!(log_tail(&path, 2), "two\nthree");
        assert_eq!(log_tail(&dir.path().join("absent"), 2), "");
    }
}
