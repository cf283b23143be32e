//! Facts about the machine routerd runs on: hostname and network interfaces (as the kernel sees them now).

use std::{collections::BTreeMap, fs, net::IpAddr, path::Path};

/// The kernel's hostname (of this UTS namespace).
pub fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "router".to_string())
}

/// What role an interface plays, from its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Uplink,
    Lan,
    Other,
}

/// The LAN interfaces that get a /64, with their number (`lan0` → 0), in order.
pub fn lan_interfaces() -> Vec<(String, u32)> {
    let mut lans: Vec<(String, u32)> = interfaces()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|i| {
            let number = i.name.strip_prefix("lan")?.parse().ok()?;
            (role_of(&i.name) == Role::Lan).then_some((i.name, number))
        })
        .collect();
    lans.sort_by_key(|(_, number)| *number);
    lans
}

/// Whether a network interface of that name exists.
pub fn interface_exists(name: &str) -> bool {
    !name.contains('/') && std::path::Path::new("/sys/class/net").join(name).exists()
}

pub fn role_of(name: &str) -> Role {
    if name == "uplink0" {
        Role::Uplink
    } else if name.strip_prefix("lan").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) {
        Role::Lan
    } else {
        Role::Other
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InterfaceInfo {
    pub name: String,
    pub hardware_addr: String,
    pub oper_state: String,
    pub mtu: u32,
    /// (address, prefix length)
    pub addrs: Vec<(IpAddr, u8)>,
}

/// Every interface of this network namespace with its addresses.
pub fn interfaces() -> std::io::Result<Vec<InterfaceInfo>> {
    let mut by_name: BTreeMap<String, InterfaceInfo> = BTreeMap::new();
    for (name, addr, prefix) in crate::sys::interfaces::addresses()? {
        by_name
            .entry(name.clone())
            .or_insert_with(|| InterfaceInfo { name, ..Default::default() })
            .addrs
            .push((addr, prefix));
    }
    if let Ok(entries) = fs::read_dir("/sys/class/net") {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            by_name.entry(name.clone()).or_insert_with(|| InterfaceInfo { name, ..Default::default() });
        }
    }
    for info in by_name.values_mut() {
        let sys = Path::new("/sys/class/net").join(&info.name);
        let read = |file: &str| fs::read_to_string(sys.join(file)).map(|s| s.trim().to_string()).unwrap_or_default();
        info.hardware_addr = read("address");
        info.oper_state = read("operstate");
        info.mtu = read("mtu").parse().unwrap_or(0);
    }
    Ok(by_name.into_values().collect())
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn roles_follow_names() {
        assert_eq!(role_of("uplink0"), Role::Uplink);
        assert_eq!(role_of("lan0"), Role::Lan);
        assert_eq!(role_of("lan12"), Role::Lan);
        assert_eq!(role_of("lan"), Role::Other);
        assert_eq!(role_of("lanx"), Role::Other);
        assert_eq!(role_of("uplink1"), Role::Other);
    }

    #[test]
    fn loopback_is_listed_with_its_address() {
        let all = interfaces().expect("interfaces");
        let lo = all.iter().find(|i| i.name == "lo").expect("lo");
        assert!(lo.addrs.contains(&(IpAddr::V4(Ipv4Addr::LOCALHOST), 8)), "{lo:?}");
    }
}
