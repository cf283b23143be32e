//! Processes: signals, liveness, resource limits.

use std::{
    io,
    process::Command,
    sync::atomic::{AtomicI32, Ordering},
};

/// The termination signal this process got, once [`catch_termination`] is in place (0: none yet).
static TERMINATION: AtomicI32 = AtomicI32::new(0);

extern "C" fn record_termination(signal: libc::c_int) {
    TERMINATION.store(signal, Ordering::SeqCst);
}

/// From now on SIGTERM and SIGINT do not end this process; [`termination_signal`] tells whether one came.
pub fn catch_termination() {
    let handler = record_termination as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, handler);
        libc::signal(libc::SIGINT, handler);
    }
}

/// SIGTERM or SIGINT, if one came since [`catch_termination`].
pub fn termination_signal() -> Option<libc::c_int> {
    Some(TERMINATION.load(Ordering::SeqCst)).filter(|signal| *signal != 0)
}

/// Makes the process `command` starts get SIGTERM when this one dies (`PR_SET_PDEATHSIG`), so that it never
/// outlives its keeper.
pub fn terminate_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and calls only prctl, which is
    // async-signal-safe; it sets only that process's parent-death signal.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Sends `signal` to process `pid`.
pub fn signal(pid: i32, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: kill takes no pointers.
    if unsafe { libc::kill(pid, signal) } == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Whether process `pid` exists (also when it belongs to another user).
pub fn is_alive(pid: i32) -> bool {
    pid > 0
        && match signal(pid, 0) {
            Ok(()) => true,
            Err(error) => error.raw_os_error() == Some(libc::EPERM),
        }
}

/// Raises the soft open-file limit to the hard limit; returns the (old, new) limits when it changed.
pub fn raise_open_files() -> Option<(u64, u64)> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes only the struct passed, which lives across the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 || limit.rlim_cur >= limit.rlim_max {
        return None;
    }
    let wanted = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
    // SAFETY: setrlimit reads only the struct passed, which lives across the call.
    (unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } == 0).then_some((limit.rlim_cur, limit.rlim_max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reaped_child_is_not() {
        assert!(is_alive(std::process::id() as i32));
        let mut child = std::process::Command::new("true").spawn().expect("spawn true");
        let pid = child.id() as i32;
        child.wait().expect("reaped");
        assert!(!is_alive(pid));
        assert!(!is_alive(0) && !is_alive(-1));
        assert!(signal(pid, 0).is_err());
    }
}
