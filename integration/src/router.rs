//! The router namespace and routerd running in it, with a generated `--perm` directory and an rtrctl identity.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    sync::Mutex,
};

use crate::{
    addresses::*,
    command::{self, Output},
    error::{IoContext, LabError},
    isp::wait_ready,
    netns::Netns,
    programs::{ROUTERD, RTRCTL},
    sockets::{self, Protocol},
    tracker::{self, Tracker},
};

pub const UPLINK: &str = "uplink0";
pub const LAN: &str = "lan0";
pub const API_PORT: u16 = 9339;
/// The name of the identity the lab issues for itself (and for `lab up`'s user).
pub const LAB_IDENTITY_NAME: &str = "lab";

#[derive(Debug)]
pub struct Router {
    netns: Netns,
    dir: PathBuf,
    tracker: Tracker,
    routerd: PathBuf,
    rtrctl: PathBuf,
    routerd_pid: Mutex<Option<u32>>,
    /// Test settings passed to routerd's environment at its next starts.
    routerd_env: Mutex<Vec<(&'static str, String)>>,
}

impl Router {
    /// Writes routerd's configuration into a fresh `--perm` and issues the lab's rtrctl identity.
    pub fn prepare(tracker: &Tracker, netns: Netns, dir: &Path) -> Result<Router, LabError> {
        let router = Router {
            netns,
            dir: dir.to_path_buf(),
            tracker: tracker.clone(),
            routerd: ROUTERD.locate()?,
            rtrctl: RTRCTL.locate()?,
            routerd_pid: Mutex::new(None),
            routerd_env: Mutex::new(Vec::new()),
        };
        let perm = router.perm();
        fs::create_dir_all(&perm).context(|| format!("creating {}", perm.display()))?;
        let interfaces = serde_json::json!({
            "interfaces": [
                { "name": UPLINK, "hardware_addr": UPLINK_MAC },
                { "name": LAN, "hardware_addr": LAN_BRIDGE_MAC, "addr": format!("{ROUTER_LAN_V4}/{LAN_V4_PREFIX_LEN}") }
            ]
        });
        write_json(&perm.join("interfaces.json"), &interfaces)?;
        // Fixed addresses below .100 stay free for devices that do not use DHCP.
        let routerd = serde_json::json!({
            "hostname": "router",
            "dhcp_ranges": { LAN: LAN_DHCP_RANGE },
            "dns_rebind_allowlist": [ALLOWLISTED_PRIVATE_NAME.0],
            "capture_ring_packets": 20000,
            // The resolver knows only the lab's names (the default, the root zone, would get an empty answer).
            "diagnostics": { "dns_name": INTERNET_NAMES[0] },
        });
        write_json(&perm.join("routerd.json"), &routerd)?;
        // One port forward, to an HTTP server the demo starts on lan1 (at its fixed address).
        let forwards = serde_json::json!({ "forwardings": [{
            "proto": "tcp", "port": DEMO_FORWARD_PORT.to_string(), "dest_addr": lan_device_static_v4(1).to_string(), "dest_port": "80"
        }]});
        write_json(&perm.join("portforwardings.json"), &forwards)?;
        router.routerd_cli(&[
            "pki",
            "issue-client",
            "--name",
            LAB_IDENTITY_NAME,
            "--out",
            &router.identity().to_string_lossy(),
        ])?;
        Ok(router)
    }

    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// routerd's `--perm` directory.
    pub fn perm(&self) -> PathBuf {
        self.dir.join("perm")
    }

    /// The lab's own rtrctl identity (issued with `routerd pki issue-client`).
    pub fn identity(&self) -> PathBuf {
        self.dir.join("lab-identity.pem")
    }

    pub fn routerd_binary(&self) -> &Path {
        &self.routerd
    }

    pub fn rtrctl_binary(&self) -> &Path {
        &self.rtrctl
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("routerd.log")
    }

    /// routerd's log so far.
    pub fn routerd_log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Sets `key=value` in routerd's environment from its next start on (test settings such as
    /// `ROUTERD_LEASE_COMPACTION_ENTRIES`).
    pub fn set_routerd_env(&self, key: &'static str, value: &str) {
        self.routerd_env.lock().unwrap_or_else(|p| p.into_inner()).push((key, value.to_string()));
    }

    /// Starts routerd in the router namespace and waits until its API listens on the LAN address.
    pub fn start_routerd(&self) -> Result<u32, LabError> {
        let args = ["run", "--perm", &self.perm().to_string_lossy()].map(String::from).to_vec();
        let mut env = vec![("ROUTERD_LOG", std::env::var("ROUTERD_LOG").unwrap_or_else(|_| "info".to_string()))];
        env.extend(self.routerd_env.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned());
        let pid = self.tracker.spawn("routerd", &self.netns, &self.routerd, &args, &env, &self.log_path())?;
        *self.routerd_pid.lock().unwrap_or_else(|p| p.into_inner()) = Some(pid);
        wait_ready(&self.tracker, "routerd", pid, || sockets::is_bound(pid, Protocol::Tcp, API_PORT))?;
        Ok(pid)
    }

    /// Stops routerd (SIGTERM, then SIGKILL after a grace period), e.g. to test a restart.
    pub fn stop_routerd(&self) {
        if let Some(pid) = self.routerd_pid.lock().unwrap_or_else(|p| p.into_inner()).take() {
            self.tracker.stop(pid);
        }
    }

    pub fn routerd_pid(&self) -> Option<u32> {
        *self.routerd_pid.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether routerd is still running (it may have exited on its own).
    pub fn routerd_running(&self) -> bool {
        self.routerd_pid().is_some_and(|pid| self.tracker.exit_status(pid).is_none() && tracker::is_alive(pid))
    }

    /// `routerd ARGS… --perm PERM` for the offline commands (`pki …`); they work on files, outside any namespace.
    pub fn routerd_cli(&self, args: &[&str]) -> Result<String, LabError> {
        command::run(Command::new(&self.routerd).args(args).arg("--perm").arg(self.perm()))
    }

    /// A one-time pairing code, as the owner would get it on the router's console.
    pub fn pairing_code(&self) -> Result<String, LabError> {
        Ok(self.routerd_cli(&["pki", "pairing-code"])?.trim().to_string())
    }

    /// rtrctl run on the router itself (loopback) with the lab's identity.
    pub fn rtrctl(&self, args: &[&str]) -> Result<Output, LabError> {
        let mut command = self.netns.command(&self.rtrctl);
        command.arg("--router").arg(format!("127.0.0.1:{API_PORT}")).arg("--identity").arg(self.identity()).args(args);
        command::run_unchecked(&mut command)
    }
}

impl Router {
    /// `rtrctl -o json status` from the router itself.
    pub fn status(&self) -> Result<serde_json::Value, LabError> {
        let output = self.rtrctl(&["-o", "json", "status"])?;
        if !output.success {
            return Err(LabError::unexpected("rtrctl status", output.combined()));
        }
        serde_json::from_str(&output.stdout).map_err(|e| LabError::unexpected("rtrctl -o json status", e.to_string()))
    }

    /// Polls the status until `wanted` holds, returning that status.
    pub fn wait_for_status(
        &self,
        what: &str,
        timeout: std::time::Duration,
        wanted: impl Fn(&serde_json::Value) -> bool,
    ) -> Result<serde_json::Value, LabError> {
        let mut last = serde_json::Value::Null;
        let result = crate::wait::until(what, timeout, || {
            let status = self.status()?;
            let done = wanted(&status);
            last = status;
            Ok(done.then(|| last.clone()))
        });
        result.map_err(|error| LabError::unexpected(error.to_string(), format!("the last status was {last}")))
    }
}

impl Router {
    /// Another build of routerd as far as hashes go: this one with `marker` appended (an ELF ignores trailing
    /// bytes), written executable to `path`. Returns its size and SHA-256, which its version will carry.
    pub fn another_build(&self, path: &Path, marker: &str) -> Result<(usize, String), LabError> {
        use std::os::unix::fs::PermissionsExt;
        let mut bytes = fs::read(&self.routerd).context(|| format!("reading {}", self.routerd.display()))?;
        bytes.extend_from_slice(marker.as_bytes());
        fs::write(path, &bytes).context(|| format!("writing {}", path.display()))?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o755))
            .context(|| format!("making {} executable", path.display()))?;
        Ok((bytes.len(), routerd_proto::sha256_hex(&bytes)))
    }

    /// Waits for a DHCPv4 lease on the uplink and returns its address (without the prefix length).
    pub fn wait_for_uplink_address(&self, timeout: std::time::Duration) -> Result<String, LabError> {
        let status = self.wait_for_status("an uplink lease", timeout, |s| s["uplink"]["dhcp4"]["state"] == "bound")?;
        let cidr = status["uplink"]["dhcp4"]["addr"].as_str().unwrap_or_default();
        Ok(cidr.split('/').next().unwrap_or_default().to_string())
    }

    /// Waits for a delegated prefix and returns it in CIDR form (e.g. `2001:db8:100::/56`).
    pub fn wait_for_delegated_prefix(&self, timeout: std::time::Duration) -> Result<String, LabError> {
        let status = self.wait_for_status("a delegated prefix", timeout, |s| {
            s["uplink"]["dhcp6"]["prefixes"].as_array().is_some_and(|p| !p.is_empty())
        })?;
        Ok(status["uplink"]["dhcp6"]["prefixes"][0].as_str().unwrap_or_default().to_string())
    }
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), LabError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| LabError::unexpected("encoding JSON", e.to_string()))?;
    fs::write(path, text + "\n").context(|| format!("writing {}", path.display()))
}
