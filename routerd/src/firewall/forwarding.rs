//! IP forwarding, which only the firewall turns on: [`enable_forwarding`] takes the proof that one of routerd's
//! rulesets is in the kernel, so a router never forwards without its firewall.

use std::path::Path;

const FORWARDING: [&str; 2] = ["net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"];

/// Turns forwarding on (IPv4 and IPv6). It takes the proof that routerd's firewall is loaded: a router never
/// forwards without it.
pub(crate) fn enable_forwarding(_firewall: &super::apply::Loaded) -> Vec<crate::netconfig::NetconfigError> {
    FORWARDING.iter().filter_map(|key| crate::netconfig::set_sysctl(key, "1").err()).collect()
}

/// Turns forwarding off (a previous run may have left it on) when no ruleset could be loaded.
pub(crate) fn disable_forwarding() -> Vec<crate::netconfig::NetconfigError> {
    FORWARDING.iter().filter_map(|key| crate::netconfig::set_sysctl(key, "0").err()).collect()
}

/// Whether IPv4 or IPv6 forwarding is on.
pub(crate) fn forwarding_enabled() -> bool {
    FORWARDING
        .iter()
        .any(|key| std::fs::read_to_string(Path::new("/proc/sys").join(key)).is_ok_and(|value| value.trim() != "0"))
}
