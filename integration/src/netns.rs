//! Network namespaces: creating them with the sysctls the lab needs, running programs inside, removing them.

use std::{
    fs,
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    path::Path,
    process::Command,
};

use crate::{
    command,
    error::{IoContext, LabError},
};

const NETNS_DIR: &str = "/run/netns";

/// A named network namespace (`ip netns`). Removing it is the job of [`crate::tracker::Tracker`], which also
/// stops the processes inside first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace with loopback up. With `dad` false, IPv6 duplicate address detection is switched off
    /// before any link exists, so addresses are usable at once instead of "tentative" for about a second
    /// (daemons that bind to them would otherwise fail).
    pub fn create(name: &str, dad: bool) -> Result<Netns, LabError> {
        command::run(Command::new("ip").args(["netns", "add", name]))?;
        let netns = Netns { name: name.to_string() };
        netns.ip(&["link", "set", "lo", "up"])?;
        if !dad {
            netns.sysctl(&[("net/ipv6/conf/all/accept_dad", "0"), ("net/ipv6/conf/default/accept_dad", "0")])?;
        }
        Ok(netns)
    }

    /// A handle to an existing namespace.
    pub fn existing(name: &str) -> Netns {
        Netns { name: name.to_string() }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME ARGS…`
    pub fn ip(&self, args: &[&str]) -> Result<String, LabError> {
        command::run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// A command that runs `program` inside the namespace. `ip netns exec` also gives it a private `/sys` that shows
    /// the namespace's interfaces, and keeps the PID: the child's PID is the program's.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// Runs `program ARGS…` in the namespace to completion and returns its stdout.
    pub fn run(&self, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Result<String, LabError> {
        command::run(self.command(program).args(args))
    }

    /// Writes sysctls (paths under `/proc/sys`, e.g. `net/ipv6/conf/all/forwarding`) inside the namespace, from a
    /// thread that joins it, so no `sysctl` binary is needed. Keys that do not exist on this kernel are an error.
    pub fn sysctl(&self, settings: &[(&str, &str)]) -> Result<(), LabError> {
        let file = fs::File::open(self.path()).context(|| format!("opening namespace {}", self.name))?;
        let settings: Vec<(String, String)> = settings.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let name = self.name.clone();
        // A thread of its own: setns changes only the calling thread, and this one ends right after.
        std::thread::spawn(move || -> Result<(), LabError> {
            // SAFETY: setns with a valid namespace file descriptor affects only this thread.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error()).context(|| format!("joining namespace {name}"));
            }
            for (key, value) in &settings {
                fs::write(Path::new("/proc/sys").join(key), value)
                    .context(|| format!("setting {key}={value} in namespace {name}"))?;
            }
            Ok(())
        })
        .join()
        .map_err(|_| LabError::unexpected("setting sysctls", "the thread panicked"))?
    }

    /// Whether a sysctl exists in this kernel (e.g. bridge netfilter keys exist only with br_netfilter).
    pub fn has_sysctl(key: &str) -> bool {
        Path::new("/proc/sys").join(key).exists()
    }

    pub fn path(&self) -> std::path::PathBuf {
        Path::new(NETNS_DIR).join(&self.name)
    }

    /// The namespace's identity (its nsfs inode), to check that a PID really runs inside it.
    pub fn inode(&self) -> Option<u64> {
        fs::metadata(self.path()).ok().map(|m| m.ino())
    }

    /// Whether process `pid` runs in this namespace (what `ip netns identify PID` answers, without a process).
    pub fn contains_pid(&self, pid: u32) -> bool {
        let process_ns = fs::metadata(format!("/proc/{pid}/ns/net")).ok().map(|m| m.ino());
        process_ns.is_some() && process_ns == self.inode()
    }

    /// PIDs of every process inside the namespace.
    pub fn pids(&self) -> Vec<u32> {
        command::run(Command::new("ip").args(["netns", "pids", &self.name]))
            .map(|out| out.split_whitespace().filter_map(|p| p.parse().ok()).collect())
            .unwrap_or_default()
    }

    pub fn exists(&self) -> bool {
        self.path().exists()
    }

    /// Removes the namespace (its links go with it). Processes must be gone first.
    pub fn delete(&self) -> Result<(), LabError> {
        if !self.exists() {
            return Ok(());
        }
        command::run(Command::new("ip").args(["netns", "delete", &self.name])).map(drop)
    }
}

/// Names of all namespaces on this machine.
pub fn list() -> Vec<String> {
    fs::read_dir(NETNS_DIR)
        .map(|dir| dir.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}
