//! Well-known servers that can stand where routerd's LAN services go: to check the lab's LAN clients on their own,
//! and as the program a user would otherwise run, for benchmarks against routerd.

use std::{fs, path::PathBuf};

use crate::{
    error::{IoContext, LabError},
    isp::{dnsmasq_dhcp_only_args, wait_ready},
    lab::Lab,
    programs,
    router::LAN,
    sockets::{self, Protocol},
};

pub const LAN_POOL: (&str, &str) = ("192.0.2.100", "192.0.2.199");

/// dnsmasq as the LAN's DHCPv4 server on the router's `lan0` (no DNS). Returns its PID and its lease file.
pub fn dnsmasq_dhcp4(lab: &Lab) -> Result<(u32, PathBuf), LabError> {
    let dir = reference_dir(lab)?;
    configure_lan(lab)?;
    let leases = dir.join("dnsmasq-lan.leases");
    let (first, last) = LAN_POOL;
    let mut args = dnsmasq_dhcp_only_args(LAN, &leases);
    args.extend([
        format!("--dhcp-range={first},{last},255.255.255.0,600"),
        format!("--pid-file={}", dir.join("dnsmasq-lan.pid").display()),
    ]);
    let program = programs::DNSMASQ.locate().unwrap_or_else(|| "dnsmasq".into());
    let netns = lab.router().netns();
    let pid =
        lab.tracker().spawn("lan dnsmasq (reference)", netns, &program, &args, &[], &dir.join("dnsmasq-lan.log"))?;
    wait_ready(&lab.tracker(), "lan dnsmasq (reference)", pid, || sockets::is_bound(pid, Protocol::Udp, 67))?;
    Ok((pid, leases))
}

/// radvd on the router's `lan0`, announcing `prefix` (a /64) for SLAAC. The router's lan0 gets `prefix::1`.
pub fn radvd_slaac(lab: &Lab, prefix: &str) -> Result<u32, LabError> {
    let dir = reference_dir(lab)?;
    let netns = lab.router().netns();
    configure_lan(lab)?;
    let router_addr = prefix.replace("::/64", "::1/64");
    netns.ip(&["-6", "addr", "replace", &router_addr, "dev", LAN, "nodad"])?;
    netns.sysctl(&[("net/ipv6/conf/all/forwarding", "1")])?;
    let config = dir.join("radvd-lan.conf");
    let text = format!(
        "interface {LAN} {{\n    AdvSendAdvert on;\n    MinRtrAdvInterval 3;\n    MaxRtrAdvInterval 10;\n    \
         prefix {prefix} {{\n        AdvOnLink on;\n        AdvAutonomous on;\n    }};\n}};\n"
    );
    fs::write(&config, text).context(|| format!("writing {}", config.display()))?;
    let pid_file = dir.join("radvd-lan.pid");
    let args = ["-n", "-C", &config.to_string_lossy(), "-p", &pid_file.to_string_lossy(), "-m", "stderr"]
        .map(String::from)
        .to_vec();
    let program = programs::RADVD.locate().unwrap_or_else(|| "radvd".into());
    let pid = lab.tracker().spawn("lan radvd (reference)", netns, &program, &args, &[], &dir.join("radvd-lan.log"))?;
    wait_ready(&lab.tracker(), "lan radvd (reference)", pid, || pid_file.exists())?;
    Ok(pid)
}

/// What routerd would do to lan0 (from interfaces.json), for tests that run a reference server instead.
fn configure_lan(lab: &Lab) -> Result<(), LabError> {
    let netns = lab.router().netns();
    netns.ip(&["link", "set", LAN, "up"])?;
    let cidr = format!("{}/{}", crate::addresses::ROUTER_LAN_V4, crate::addresses::LAN_V4_PREFIX_LEN);
    netns.ip(&["addr", "replace", &cidr, "dev", LAN])?;
    Ok(())
}

fn reference_dir(lab: &Lab) -> Result<PathBuf, LabError> {
    let dir = lab.work_dir().join("reference");
    fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
