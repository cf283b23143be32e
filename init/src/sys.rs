//! The few system calls init (and the recovery installer, also a PID 1) makes that std has no wrapper for.

use std::{ffi::CString, io, os::unix::ffi::OsStrExt, path::Path};

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

fn check(result: libc::c_int) -> io::Result<()> {
    if result == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

pub fn mount(source: &str, target: &Path, fstype: &str, flags: libc::c_ulong, data: &str) -> io::Result<()> {
    let (source, target) = (CString::new(source)?, c_path(target)?);
    let (fstype, data) = (CString::new(fstype)?, CString::new(data)?);
    // SAFETY: every pointer is a NUL-terminated string that outlives the call.
    check(unsafe { libc::mount(source.as_ptr(), target.as_ptr(), fstype.as_ptr(), flags, data.as_ptr().cast()) })
}

/// Moves the mount at `from` to `to`.
pub fn move_mount(from: &Path, to: &Path) -> io::Result<()> {
    let (from, to) = (c_path(from)?, c_path(to)?);
    // SAFETY: as in `mount`; a move needs no file system type or data.
    check(unsafe { libc::mount(from.as_ptr(), to.as_ptr(), std::ptr::null(), libc::MS_MOVE, std::ptr::null()) })
}

pub fn unmount(target: &Path, flags: libc::c_int) -> io::Result<()> {
    let target = c_path(target)?;
    // SAFETY: a NUL-terminated path.
    check(unsafe { libc::umount2(target.as_ptr(), flags) })
}

pub fn chroot(path: &Path) -> io::Result<()> {
    let path = c_path(path)?;
    // SAFETY: a NUL-terminated path.
    check(unsafe { libc::chroot(path.as_ptr()) })
}

pub fn set_hostname(name: &str) -> io::Result<()> {
    // SAFETY: a buffer and its length.
    check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) })
}

/// /proc, /sys and /dev (devtmpfs: Debian's kernel does not mount it by itself), where they are not yet.
/// Returns what could not be mounted, and why.
pub fn mount_kernel_file_systems() -> Vec<String> {
    let mut failed = Vec::new();
    // Each with a path that exists only once it is mounted.
    for (fstype, target, marker) in
        [("proc", "/proc", "self"), ("sysfs", "/sys", "kernel"), ("devtmpfs", "/dev", "null")]
    {
        let target = Path::new(target);
        if target.join(marker).exists() {
            continue;
        }
        let _ = std::fs::create_dir_all(target);
        if let Err(error) = mount(fstype, target, fstype, libc::MS_NOSUID, "") {
            failed.push(format!("mounting {fstype} on {}: {error}", target.display()));
        }
    }
    failed
}

pub fn sync() {
    // SAFETY: no arguments.
    unsafe { libc::sync() }
}

/// Restarts or powers off the machine (`libc::RB_AUTOBOOT`, `libc::RB_POWER_OFF`); returns only on failure.
pub fn reboot(how: libc::c_int) -> io::Error {
    // SAFETY: no pointers.
    unsafe { libc::reboot(how) };
    io::Error::last_os_error()
}

/// Brings the loopback interface up (an ioctl on any socket: no netlink needed for one flag).
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: a socket, an ifreq filled with the name, and two ioctls that read and write only that struct.
    unsafe {
        let socket = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if socket < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut request: libc::ifreq = std::mem::zeroed();
        for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
            *slot = *byte as libc::c_char;
        }
        let mut result = libc::ioctl(socket, libc::SIOCGIFFLAGS, &mut request);
        if result == 0 {
            request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            result = libc::ioctl(socket, libc::SIOCSIFFLAGS, &request);
        }
        let error = io::Error::last_os_error();
        libc::close(socket);
        if result == 0 { Ok(()) } else { Err(error) }
    }
}

/// The signals init waits for, blocked so that they are only taken by [`wait_signal`].
pub fn block_signals(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data filled by sigemptyset/sigaddset; sigprocmask reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in signals {
            libc::sigaddset(&mut set, *signal);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// The next of the blocked `set`, or `None` after `timeout`.
pub fn wait_signal(set: &libc::sigset_t, timeout: std::time::Duration) -> Option<libc::c_int> {
    let timeout =
        libc::timespec { tv_sec: timeout.as_secs() as libc::time_t, tv_nsec: timeout.subsec_nanos() as libc::c_long };
    // SAFETY: reads the set and the timeout; no siginfo is asked for.
    let signal = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &timeout) };
    (signal > 0).then_some(signal)
}

/// For a child, before exec: no signal blocked (init's mask would otherwise be inherited).
pub fn unblock_all_signals() -> io::Result<()> {
    // SAFETY: an empty set, read by sigprocmask; async-signal-safe, so fine between fork and exec.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        check(libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()))
    }
}

/// Every child that has ended, with its wait status, without blocking.
pub fn reap() -> Vec<(libc::pid_t, libc::c_int)> {
    let mut ended = Vec::new();
    loop {
        let mut status = 0;
        // SAFETY: writes the status only.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return ended;
        }
        ended.push((pid, status));
    }
}

pub fn kill(pid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: no pointers.
    unsafe { libc::kill(pid, signal) };
}

/// "exit code 3", "killed by signal 9".
pub fn describe_status(status: libc::c_int) -> String {
    if libc::WIFEXITED(status) {
        format!("exit code {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("wait status {status}")
    }
}

/// `LINUX_REBOOT_CMD_KEXEC`: boot the kernel loaded by kexec_file_load.
pub const REBOOT_KEXEC: libc::c_int = 0x4558_4543;

/// Loads `kernel` and `initramfs` with `cmdline` for a kexec (the kernel checks the image; no kexec-tools).
pub fn kexec_load(kernel: &Path, initramfs: &Path, cmdline: &str) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let kernel = std::fs::File::open(kernel)?;
    let initramfs = std::fs::File::open(initramfs)?;
    let cmdline = CString::new(cmdline)?;
    let length = cmdline.as_bytes_with_nul().len();
    // SAFETY: two open descriptors, and a NUL-terminated string with its length (the NUL counted).
    let result = unsafe {
        libc::syscall(libc::SYS_kexec_file_load, kernel.as_raw_fd(), initramfs.as_raw_fd(), length, cmdline.as_ptr(), 0)
    };
    if result == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// A hardware watchdog (`/dev/watchdog`): it resets the machine unless fed within its timeout.
pub struct Watchdog {
    file: std::fs::File,
}

/// `_IOWR('W', 6, int)` and `_IOR('W', 5, int)` of <linux/watchdog.h>.
const WDIOC_SETTIMEOUT: libc::c_ulong = 0xC004_5706;
const WDIOC_KEEPALIVE: libc::c_ulong = 0x8004_5705;

impl Watchdog {
    /// Opens and starts the watchdog with `timeout` seconds.
    pub fn arm(timeout: u32) -> io::Result<Watchdog> {
        use std::os::fd::AsRawFd;
        let file = std::fs::OpenOptions::new().write(true).open("/dev/watchdog")?;
        let mut seconds = timeout as libc::c_int;
        // SAFETY: the ioctl reads and writes one int.
        if unsafe { libc::ioctl(file.as_raw_fd(), WDIOC_SETTIMEOUT, &mut seconds) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Watchdog { file })
    }

    pub fn feed(&self) {
        use std::os::fd::AsRawFd;
        let mut unused: libc::c_int = 0;
        // SAFETY: the ioctl takes an int it ignores.
        unsafe { libc::ioctl(self.file.as_raw_fd(), WDIOC_KEEPALIVE, &mut unused) };
    }

    /// Stops it (the "magic close": write 'V', then close).
    pub fn disarm(self) {
        use std::io::Write;
        let mut file = self.file;
        let _ = file.write_all(b"V");
    }

    /// Leaves it running while this process goes away (a kexec): the next system must feed it in time.
    pub fn leave_running(self) {
        std::mem::forget(self.file);
    }
}
