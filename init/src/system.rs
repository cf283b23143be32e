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

use routerd_init::block;

use routerd_init::sys;

use crate::log::Log;

const PERM: &str = "/perm";
/// Where routerd mounts the boot partition (`routerd::update::system::slots::BOOT_MOUNT`).
const BOOT: &str = "/boot";
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
pub(crate) const INIT_ENV: &str = "ROUTERD_INIT";

pub(crate) fn run(log: &Log) -> String {
    let signals = sys::block_signals(&[libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGUSR1, libc::SIGUSR2]);
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
    let window = cmdline.get("routerd.trial").and_then(|s| s.parse::<u64>().ok());
    // Armed as soon as the watchdog's driver is loaded: loading it stopped the timer the old system left running
    // for the kexec. /perm was unmounted cleanly before the kexec, so its check below is quick.
    let trial = window.map(|window| Trial::start(log, window));
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
    supervise(log, &signals, trial)
}

/// A system update on trial in this slot: the watchdog runs and is fed only while routerd runs; routerd must
/// confirm within the window (plus a margin for the boot), or init goes back to the boot default, the old slot.
struct Trial {
    watchdog: Option<sys::Watchdog>,
    deadline: Instant,
    window: u64,
}

/// The watchdog resets the machine when init stops feeding it for this long (a hang).
const TRIAL_WATCHDOG_SECONDS: u32 = 30;
/// How long a kexec'd kernel has to come up and start feeding the watchdog.
const KEXEC_WATCHDOG_SECONDS: u32 = 120;
/// Time for the boot itself, on top of routerd's confirm window.
const TRIAL_MARGIN: Duration = Duration::from_secs(60);

impl Trial {
    fn start(log: &Log, window: u64) -> Trial {
        let watchdog = match sys::Watchdog::arm(TRIAL_WATCHDOG_SECONDS) {
            Ok(watchdog) => Some(watchdog),
            Err(error) => {
                log.line(&format!("init: no hardware watchdog ({error}): a hang on trial is not caught"));
                None
            }
        };
        log.line(&format!("init: system update on trial: routerd has {window} s to confirm it"));
        Trial { watchdog, deadline: Instant::now() + Duration::from_secs(window) + TRIAL_MARGIN, window }
    }
}

/// Gives up an update on trial: says why in /perm for the old slot's routerd, then restarts into the boot default.
fn abandon(log: &Log, routerd: Option<libc::pid_t>, reason: &str) -> String {
    log.line(&format!("init: abandoning the system update: {reason}"));
    let path = Path::new(PERM).join(routerd_init::handoff::TRIAL_FAILED);
    if let Err(error) = std::fs::write(&path, format!("{reason}\n")) {
        log.line(&format!("init: writing {}: {error}", path.display()));
    }
    shutdown(log, routerd, libc::RB_AUTOBOOT)
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

/// Keeps routerd running until a signal asks for a restart, a power-off or a kexec.
fn supervise(log: &Log, signals: &libc::sigset_t, mut trial: Option<Trial>) -> String {
    let mut routerd: Option<(libc::pid_t, Instant)> = None;
    let mut restart_at = Some(Instant::now());
    let mut delay = FIRST_RESTART_DELAY;
    loop {
        if let Some(current) = trial.take() {
            if Path::new(routerd_init::handoff::CONFIRMED).exists() {
                log.line("init: the system update is confirmed; the watchdog is stopped");
                if let Some(watchdog) = current.watchdog {
                    watchdog.disarm();
                }
            } else if Instant::now() >= current.deadline {
                let reason = format!("routerd did not confirm the update within {} s", current.window);
                return abandon(log, routerd.map(|(pid, _)| pid), &reason);
            } else {
                if let (Some(watchdog), Some(_)) = (&current.watchdog, routerd) {
                    watchdog.feed();
                }
                trial = Some(current);
            }
        }
        if let Some(at) = restart_at
            && Instant::now() >= at
        {
            restart_at = None;
            match start_routerd(log) {
                Ok(pid) => routerd = Some((pid, Instant::now())),
                Err(error) if trial.is_some() => {
                    return abandon(log, None, &format!("routerd cannot start ({error}) while the update is on trial"));
                }
                Err(error) => {
                    log.line(&format!("init: starting routerd: {error}; trying again in {} s", delay.as_secs()));
                    restart_at = Some(Instant::now() + delay);
                    delay = (delay * 2).min(MAX_RESTART_DELAY);
                }
            }
        }
        let mut timeout = restart_at.map_or(Duration::from_secs(60), |at| at.saturating_duration_since(Instant::now()));
        if trial.is_some() {
            timeout = timeout.min(Duration::from_secs(5));
        }
        match sys::wait_signal(signals, timeout) {
            Some(libc::SIGCHLD) => {
                for (pid, status) in sys::reap() {
                    let Some((routerd_pid, started)) = routerd else { continue };
                    if pid != routerd_pid {
                        continue;
                    }
                    routerd = None;
                    if trial.is_some() {
                        let reason =
                            format!("routerd ended ({}) while the update was on trial", sys::describe_status(status));
                        return abandon(log, None, &reason);
                    }
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
            Some(libc::SIGUSR1) => match load_kexec(log) {
                Ok(()) => return shutdown(log, routerd.map(|(pid, _)| pid), sys::REBOOT_KEXEC),
                Err(error) => log.line(&format!("init: no kexec: {error}; staying in this system")),
            },
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

/// Loads the kernel routerd asked for (in the kexec request), so that the switch itself cannot fail half-way.
fn load_kexec(log: &Log) -> Result<(), String> {
    let path = routerd_init::handoff::KEXEC_REQUEST;
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))?;
    let request = routerd_init::handoff::KexecRequest::parse(&text).ok_or(format!("{path}: not a kexec request"))?;
    log.line(&format!("init: loading {} for a kexec: {}", request.kernel, request.cmdline));
    sys::kexec_load(Path::new(&request.kernel), Path::new(&request.initramfs), &request.cmdline)
        .map_err(|e| format!("kexec_file_load: {e}"))
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
    let what = match how {
        libc::RB_POWER_OFF => "powering off",
        sys::REBOOT_KEXEC => "switching to the new system (kexec)",
        _ => "restarting",
    };
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
    // routerd mounts the boot partition for system updates; unmounted, its vfat is marked clean.
    if let Err(error) = sys::unmount(Path::new(BOOT), 0)
        && error.raw_os_error() != Some(libc::EINVAL)
        && error.raw_os_error() != Some(libc::ENOENT)
    {
        log.line(&format!("init: unmounting {BOOT}: {error}"));
    }
    if let Err(error) = sys::unmount(Path::new(PERM), 0) {
        log.line(&format!("init: unmounting /perm: {error}; remounting it read-only"));
        let _ = sys::mount("", Path::new(PERM), "", libc::MS_REMOUNT | libc::MS_RDONLY, "");
    }
    sys::sync();
    if how == sys::REBOOT_KEXEC {
        // Armed last: a new kernel that hangs before its init feeds it is reset into the boot default.
        match sys::Watchdog::arm(KEXEC_WATCHDOG_SECONDS) {
            Ok(watchdog) => watchdog.leave_running(),
            Err(error) => log.line(&format!("init: no hardware watchdog for the kexec: {error}")),
        }
    }
    format!("{what} failed: {}", sys::reboot(how))
}
