//! A device in the home: its own namespace with `eth0` on the router's LAN bridge, running real clients.

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
};

use crate::{
    addresses::*,
    clients::{self, DhcpClient, DhcpClientKind, RouterAdvert},
    command::{self, Output},
    error::LabError,
    netns::Netns,
    router::API_PORT,
    tracker::Tracker,
};

pub const INTERFACE: &str = "eth0";

#[derive(Debug)]
pub struct LanDevice {
    number: usize,
    netns: Netns,
    dir: PathBuf,
    tracker: Tracker,
    rtrctl: PathBuf,
}

impl LanDevice {
    pub(crate) fn new(number: usize, netns: Netns, dir: &Path, tracker: &Tracker, rtrctl: &Path) -> LanDevice {
        LanDevice { number, netns, dir: dir.to_path_buf(), tracker: tracker.clone(), rtrctl: rtrctl.to_path_buf() }
    }

    /// `lan1`, `lan2`, …
    pub fn name(&self) -> String {
        format!("lan{}", self.number)
    }

    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    pub fn mac(&self) -> String {
        lan_device_mac(self.number)
    }

    /// Gives the device a fixed address and a default route via the router, as a user would by hand.
    pub fn set_static_ipv4(&self) -> Result<Ipv4Addr, LabError> {
        let addr = lan_device_static_v4(self.number);
        self.netns.ip(&["addr", "replace", &format!("{addr}/{LAN_V4_PREFIX_LEN}"), "dev", INTERFACE])?;
        self.netns.ip(&["route", "replace", "default", "via", &ROUTER_LAN_V4.to_string(), "dev", INTERFACE])?;
        Ok(addr)
    }

    /// Starts a DHCP client on `eth0`; it keeps running (and renewing) until the lab stops it.
    pub fn start_dhcp_client(&self, kind: DhcpClientKind) -> Result<DhcpClient, LabError> {
        DhcpClient::start(&self.tracker, &self.netns, INTERFACE, kind, &self.dir)
    }

    /// The device's global IPv6 addresses (e.g. from SLAAC), without prefix length.
    pub fn global_ipv6_addresses(&self) -> Result<Vec<String>, LabError> {
        let out = self.netns.ip(&["-6", "-o", "addr", "show", "dev", INTERFACE, "scope", "global"])?;
        Ok(out
            .lines()
            .filter_map(|line| line.split_whitespace().skip_while(|w| *w != "inet6").nth(1))
            .filter_map(|cidr| cidr.split('/').next())
            .map(str::to_string)
            .collect())
    }

    /// Solicits a router advertisement on the LAN.
    pub fn rdisc6(&self) -> Result<RouterAdvert, LabError> {
        clients::rdisc6(&self.netns, INTERFACE)
    }

    pub fn dig(&self, server: &str, name: &str, record_type: &str) -> Result<Vec<String>, LabError> {
        clients::dig(&self.netns, server, name, record_type)
    }

    pub fn curl(&self, url: &str) -> Result<String, LabError> {
        clients::curl(&self.netns, url)
    }

    /// Runs the lab's "whoami" HTTP server on `port` (it answers `client=<address it sees>`), for port forwards
    /// and inbound tests. It runs until the lab stops it.
    pub fn serve_http(&self, port: u16) -> Result<u32, LabError> {
        let script = self.dir.join("http_host.py");
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| LabError::unexpected("creating the device directory", e.to_string()))?;
        std::fs::write(&script, include_str!("assets/http_host.py"))
            .map_err(|e| LabError::unexpected("writing the HTTP server", e.to_string()))?;
        let args = vec!["-u".to_string(), script.display().to_string(), port.to_string()];
        let python = PathBuf::from(crate::programs::PYTHON3.name);
        let log = self.dir.join(format!("http-{port}.log"));
        let pid =
            self.tracker.spawn(&format!("{} http :{port}", self.name()), &self.netns, &python, &args, &[], &log)?;
        crate::isp::wait_ready(&self.tracker, "an HTTP server on a LAN device", pid, || {
            crate::sockets::is_bound(pid, crate::sockets::Protocol::Tcp, port)
        })?;
        Ok(pid)
    }

    /// This device's own rtrctl identity file (written by `pair`).
    pub fn identity(&self) -> PathBuf {
        self.dir.join("identity.pem")
    }

    /// rtrctl from this device to the router's LAN address, with this device's identity.
    pub fn rtrctl(&self, args: &[&str]) -> Result<Output, LabError> {
        self.rtrctl_with_identity(&self.identity(), args)
    }

    pub fn rtrctl_with_identity(&self, identity: &Path, args: &[&str]) -> Result<Output, LabError> {
        let mut command = self.netns.command(&self.rtrctl);
        command.arg("--router").arg(format!("{ROUTER_LAN_V4}:{API_PORT}")).arg("--identity").arg(identity).args(args);
        command::run_unchecked(&mut command)
    }
}
