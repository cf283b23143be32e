//! The third-party programs the lab runs, the Debian packages they come from, and routerd's own binaries.

use std::{
    env,
    path::{Path, PathBuf},
};

use crate::error::LabError;

/// A program the lab runs, and the Debian package that provides it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Program {
    pub name: &'static str,
    pub package: &'static str,
}

pub const IP: Program = Program { name: "ip", package: "iproute2" };
pub const DNSMASQ: Program = Program { name: "dnsmasq", package: "dnsmasq-base" };
pub const KEA_DHCP6: Program = Program { name: "kea-dhcp6", package: "kea-dhcp6-server" };
pub const RADVD: Program = Program { name: "radvd", package: "radvd" };
pub const UNBOUND: Program = Program { name: "unbound", package: "unbound" };
pub const CHRONYD: Program = Program { name: "chronyd", package: "chrony" };
pub const BUSYBOX: Program = Program { name: "busybox", package: "busybox" };
pub const DHCLIENT: Program = Program { name: "dhclient", package: "isc-dhcp-client" };
pub const RDISC6: Program = Program { name: "rdisc6", package: "ndisc6" };
pub const DIG: Program = Program { name: "dig", package: "bind9-dnsutils" };
pub const CURL: Program = Program { name: "curl", package: "curl" };
/// Checks routerd's Prometheus exposition (`promtool check metrics`).
pub const PROMTOOL: Program = Program { name: "promtool", package: "prometheus" };
/// Debian's own Python: the HTTP "internet host" must not depend on whatever `python3` a user's PATH finds first.
pub const PYTHON3: Program = Program { name: "/usr/bin/python3", package: "python3" };

/// Kea's hook that runs a script on lease events; the ISP uses it to route delegated prefixes.
pub const KEA_RUN_SCRIPT_HOOK: &str = "/usr/lib/x86_64-linux-gnu/kea/hooks/libdhcp_run_script.so";
const KEA_HOOK_PACKAGE: &str = "kea-common";

/// Everything a full lab (ISP, router, LAN devices) needs.
pub const ALL: &[Program] =
    &[IP, DNSMASQ, KEA_DHCP6, RADVD, UNBOUND, CHRONYD, BUSYBOX, DHCLIENT, RDISC6, DIG, CURL, PYTHON3];

/// Directories searched besides `PATH`: daemons live in sbin, which a non-login root shell may not have in `PATH`.
const SBIN_DIRS: &[&str] = &["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"];

impl Program {
    /// The program's full path, or `None` when it is not installed.
    pub fn locate(&self) -> Option<PathBuf> {
        let name = Path::new(self.name);
        if name.is_absolute() {
            return is_executable(name).then(|| name.to_path_buf());
        }
        let path_dirs = env::var_os("PATH").map(|p| env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default();
        path_dirs
            .into_iter()
            .chain(SBIN_DIRS.iter().map(PathBuf::from))
            .map(|dir| dir.join(name))
            .find(|p| is_executable(p))
    }
}

/// Checks that every program is installed, naming all missing ones and their packages at once.
pub fn require(programs: &[Program]) -> Result<(), LabError> {
    let mut missing: Vec<(&'static str, &'static str)> =
        programs.iter().filter(|p| p.locate().is_none()).map(|p| (p.name, p.package)).collect();
    if programs.contains(&KEA_DHCP6) && !Path::new(KEA_RUN_SCRIPT_HOOK).exists() {
        missing.push((KEA_RUN_SCRIPT_HOOK, KEA_HOOK_PACKAGE));
    }
    if missing.is_empty() { Ok(()) } else { Err(LabError::MissingPrograms(missing)) }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// One of this workspace's binaries (`routerd`, `rtrctl`).
#[derive(Clone, Copy, Debug)]
pub struct OwnBinary {
    pub name: &'static str,
    pub package: &'static str,
}

pub const ROUTERD: OwnBinary = OwnBinary { name: "routerd", package: "routerd" };
pub const RTRCTL: OwnBinary = OwnBinary { name: "rtrctl", package: "rtrctl" };
pub const ROUTERD_IMAGE: OwnBinary = OwnBinary { name: "routerd-image", package: "routerd-image" };
pub const ROUTERD_RECOVER: OwnBinary = OwnBinary { name: "routerd-recover", package: "routerd-recover" };
pub const QEMU: Program = Program { name: "qemu-system-x86_64", package: "qemu-system-x86" };

impl OwnBinary {
    /// Finds the binary in `$ROUTERD_LAB_BIN_DIR`, else next to the running executable: `lab` lives in
    /// `target/<profile>/`, test executables in `target/<profile>/deps/`.
    pub fn locate(&self) -> Result<PathBuf, LabError> {
        let mut searched = Vec::new();
        if let Some(dir) = env::var_os("ROUTERD_LAB_BIN_DIR") {
            searched.push(PathBuf::from(dir));
        }
        if let Some(dir) = env::current_exe().ok().and_then(|exe| exe.parent().map(Path::to_path_buf)) {
            if let Some(parent) = dir.parent().filter(|_| dir.ends_with("deps")) {
                searched.push(parent.to_path_buf());
            }
            searched.push(dir);
        }
        match searched.iter().map(|dir| dir.join(self.name)).find(|p| is_executable(p)) {
            Some(path) => Ok(path),
            None => Err(LabError::MissingBinary { binary: self.name, package: self.package, searched }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_names_its_debian_package() {
        let absent = Program { name: "routerd-lab-no-such-program", package: "no-such-package" };
        let error = require(&[IP, absent]).expect_err("the program does not exist");
        let message = error.to_string();
        assert!(message.contains("routerd-lab-no-such-program (Debian package no-such-package)"), "{message}");
        assert!(message.contains("apt-get install -y no-such-package"), "{message}");
    }

    #[test]
    fn installed_programs_are_found_in_sbin_too() {
        assert!(IP.locate().is_some_and(|p| p.ends_with("ip")));
    }
}
