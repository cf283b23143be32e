//! Stage two, the system's init in the root slot: mounts `/run`, `/tmp` and `/perm` (checked by e2fsck first),
//! loads the router's modules, brings up `lo`, sets the hostname, then keeps `routerd run --perm /perm` running
//! and reaps every orphan. SIGTERM (or Ctrl-Alt-Del) restarts the machine, SIGUSR2 powers it off, each after
//! stopping routerd and unmounting /perm.

use std::{
    io::BufRead,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use routerd_init::cmdline::Cmdline;

use crate::{block, log::Log, sys};

const PERM: &str = "/perm";
const ROUTERD: &str = "/usr/bin/routerd";
const E2FSCK: &str = "/sbin/e2fsck";
const PERM_TIMEOUT: Duration = Duration::from_secs(60);
/// routerd is restarted after this, doubling each time it dies again soon, up to `MAX_RESTART_DELAY`.
const FIRST_RESTART_DELAY: Duration = Duration::from_secs(1);
const MAX_RESTART_DELAY: Duration = Duration::from_secs(30);
/// A routerd that ran this long before it died is restarted at once again (its failure is not a loop).
const STABLE_RUN: Duration = Duration::from_secs(60);
/// How long routerd has to stop before the machine restarts anyway.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The environment variable that tells routerd it runs under this init (so reboot and power-off are possible).
pub const INIT_ENV: &str = "ROUTERD_INIT";

pub fn run(log: &Log) -> String {
    let signals = sys::block_signals(&[libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGUSR2]);
    crate::mount_kernel_file_systems(log);
    for target in ["/run", "/tmp"] {
        if let Err(error) =
            sys::mount("tmpfs", Path::new(target), "tmpfs", libc::MS_NOSUID | libc::MS_NODEV, "mode=0755")
        {
            log.line(&format!("init: mounting tmpfs on {target}: {error}"));
        }
    }
    log.line(&format!("init: routerd appliance, kernel {}", crate::kernel_release().unwrap_or_default()));
    let cmdline = Cmdline::read().unwrap_or_default();
    let hostname = cmdline.get("routerd.hostname").unwrap_or("router");
    if let Err(error) = sys::set_hostname(hostname) {
        log.line(&format!("init: setting the hostname {hostname:?}: {error}"));
    }
    if let Err(error) = sys::loopback_up() {
        log.line(&format!("init: bringing up lo: {error}"));
    }
    crate::load_modules(log, Path::new("/etc/modules.load"));
    // Without /perm there is no configuration and nowhere to keep leases: routerd does not start on a blank
    // stand-in. Keep trying (a disk that is slow to appear) and keep saying why.
    let perm = loop {
        match mount_perm(log, &cmdline) {
            Ok(device) => break device,
            Err(error) => {
                log.line(&format!("init: /perm: {error}; routerd does not start without it; trying again in 30 s"));
                if wait_for_shutdown(&signals, Duration::from_secs(30)).is_some() {
                    return shutdown(log, None, libc::RB_AUTOBOOT);
                }
            }
        }
    };
    if let Err(error) = log.persist(&Path::new(PERM).join("log")) {
        log.line(&format!("init: cannot keep this boot's log in /perm/log: {error}"));
    }
    log.line(&format!("init: /perm is {} (ext4)", perm));
    supervise(log, &signals)
}

/// Checks the /perm partition with e2fsck (repairing what it safely can) and mounts it.
fn mount_perm(log: &Log, cmdline: &Cmdline) -> Result<String, String> {
    let partuuid = cmdline.get("routerd.perm").ok_or("no routerd.perm= on the kernel command line")?;
    let device = block::wait_for_partition(partuuid, PERM_TIMEOUT)?;
    let device = device.to_string_lossy().to_string();
    // -p repairs what is safe without asking; exit code 4 or more means it could not.
    let checked = Command::new(E2FSCK).args(["-p", &device]).output();
    match checked {
        Ok(output) => {
            let code = output.status.code().unwrap_or(-1);
            let said = String::from_utf8_lossy(&output.stdout).trim().to_string();
            match code {
                0 => log.line(&format!("init: e2fsck: {device} is clean")),
                1 | 2 => log.line(&format!("init: e2fsck repaired {device}: {said}")),
                _ => {
                    log.line(&format!("init: e2fsck could not repair {device} by itself (exit {code}): {said}"));
                    // -y answers yes to every repair: data in damaged files may be lost, the rest is kept.
                    let forced = Command::new(E2FSCK).args(["-f", "-y", &device]).output();
                    let code = forced.as_ref().ok().and_then(|o| o.status.code()).unwrap_or(-1);
                    if code >= 4 {
                        return Err(format!("e2fsck -y could not repair {device} (exit {code})"));
                    }
                    log.line(&format!("init: e2fsck -y repaired {device}; look in /perm/lost+found for pieces"));
                }
            }
        }
        Err(error) => log.line(&format!("init: cannot run {E2FSCK}: {error}; mounting unchecked")),
    }
    sys::mount(&device, Path::new(PERM), "ext4", libc::MS_NOATIME | libc::MS_NODEV | libc::MS_NOSUID, "")
        .map_err(|e| format!("mounting {device}: {e}"))?;
    Ok(device)
}

/// Keeps routerd running until a signal asks for a restart or power-off.
fn supervise(log: &Log, signals: &libc::sigset_t) -> String {
    let mut routerd: Option<(libc::pid_t, Instant)> = None;
    let mut restart_at = Some(Instant::now());
    let mut delay = FIRST_RESTART_DELAY;
    loop {
        if let Some(at) = restart_at
            && Instant::now() >= at
        {
            restart_at = None;
            match start_routerd(log) {
                Ok(pid) => routerd = Some((pid, Instant::now())),
                Err(error) => {
                    log.line(&format!("init: starting routerd: {error}; trying again in {} s", delay.as_secs()));
                    restart_at = Some(Instant::now() + delay);
                    delay = (delay * 2).min(MAX_RESTART_DELAY);
                }
            }
        }
        let timeout = restart_at.map_or(Duration::from_secs(60), |at| at.saturating_duration_since(Instant::now()));
        match sys::wait_signal(signals, timeout) {
            Some(libc::SIGCHLD) => {
                for (pid, status) in sys::reap() {
                    let Some((routerd_pid, started)) = routerd else { continue };
                    if pid != routerd_pid {
                        continue;
                    }
                    routerd = None;
                    if started.elapsed() >= STABLE_RUN {
                        delay = FIRST_RESTART_DELAY;
                    }
                    log.line(&format!(
                        "init: routerd ended ({}); starting it again in {} s",
                        sys::describe_status(status),
                        delay.as_secs()
                    ));
                    restart_at = Some(Instant::now() + delay);
                    delay = (delay * 2).min(MAX_RESTART_DELAY);
                }
            }
            Some(libc::SIGUSR2) => return shutdown(log, routerd.map(|(pid, _)| pid), libc::RB_POWER_OFF),
            Some(_) => return shutdown(log, routerd.map(|(pid, _)| pid), libc::RB_AUTOBOOT),
            None => {}
        }
    }
}

fn start_routerd(log: &Log) -> std::io::Result<libc::pid_t> {
    let mut command = Command::new(ROUTERD);
    command
        .args(["run", "--perm", PERM])
        .env(INIT_ENV, "1")
        .env("PATH", "/usr/bin:/sbin")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only an async-signal-safe sigprocmask runs between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, sys::unblock_all_signals);
    }
    let mut child = command.spawn()?;
    for stream in [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child.stderr.take().map(|s| Box::new(s) as _),
    ]
    .into_iter()
    .flatten()
    {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stream).lines() {
                match line {
                    Ok(line) => log.line(&line),
                    Err(_) => return,
                }
            }
        });
    }
    let pid = child.id() as libc::pid_t;
    log.line(&format!("init: started routerd (pid {pid})"));
    // The child is reaped by `supervise` through waitpid(-1), not through this handle.
    std::mem::forget(child);
    Ok(pid)
}

/// Waits up to `timeout` for a shutdown signal (children are reaped meanwhile).
fn wait_for_shutdown(signals: &libc::sigset_t, timeout: Duration) -> Option<libc::c_int> {
    let end = Instant::now() + timeout;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match sys::wait_signal(signals, left) {
            Some(libc::SIGCHLD) => {
                sys::reap();
            }
            Some(signal) => return Some(signal),
            None => return None,
        }
    }
    None
}

/// Stops routerd (then everything else), syncs and unmounts /perm, and restarts or powers off.
fn shutdown(log: &Log, routerd: Option<libc::pid_t>, how: libc::c_int) -> String {
    let what = if how == libc::RB_POWER_OFF { "powering off" } else { "restarting" };
    log.line(&format!("init: {what}: stopping routerd"));
    if let Some(pid) = routerd {
        sys::kill(pid, libc::SIGTERM);
        let end = Instant::now() + STOP_TIMEOUT;
        let mut stopped = false;
        while !stopped && Instant::now() < end {
            stopped = sys::reap().iter().any(|(ended, _)| *ended == pid);
            if !stopped {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if !stopped {
            log.line(&format!("init: routerd did not stop within {} s; killing it", STOP_TIMEOUT.as_secs()));
        }
    }
    sys::kill(-1, libc::SIGKILL);
    std::thread::sleep(Duration::from_millis(100));
    sys::reap();
    log.line(&format!("init: unmounting /perm and {what}"));
    log.close_file();
    sys::sync();
    if let Err(error) = sys::unmount(Path::new(PERM), 0) {
        log.line(&format!("init: unmounting /perm: {error}; remounting it read-only"));
        let _ = sys::mount("", Path::new(PERM), "", libc::MS_REMOUNT | libc::MS_RDONLY, "");
    }
    sys::sync();
    format!("{what} failed: {}", sys::reboot(how))
}
