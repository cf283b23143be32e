//! Gathering [`Facts`] for the plan: interface state and counters from sysfs, addresses, the IPv6 default
//! route and bound UDP ports from /proc (all of this network namespace), service states from the supervisor.

use std::{
    fs,
    net::{IpAddr, Ipv6Addr},
    path::Path,
};

use super::plan::{LanFacts, LinkFacts, UplinkFacts};
use crate::supervisor::ServiceState;

pub(crate) fn link(name: &str) -> LinkFacts {
    let sys = Path::new("/sys/class/net").join(name);
    let read = |file: &str| fs::read_to_string(sys.join(file)).map(|s| s.trim().to_string()).unwrap_or_default();
    let counter = |file: &str| read(&format!("statistics/{file}")).parse().unwrap_or(0);
    let oper_state = read("operstate");
    LinkFacts {
        name: name.to_string(),
        oper_state: if oper_state.is_empty() { "missing".into() } else { oper_state },
        // Reading `carrier` of a link that is administratively down fails (EINVAL): no carrier then.
        carrier: Some(read("carrier") == "1"),
        rx_packets: counter("rx_packets"),
        tx_packets: counter("tx_packets"),
        rx_errors: counter("rx_errors"),
        tx_errors: counter("tx_errors"),
    }
}

fn addresses_of(name: &str) -> Vec<IpAddr> {
    crate::sys::interfaces::addresses()
        .unwrap_or_default()
        .into_iter()
        .filter(|(interface, _, _)| interface == name)
        .map(|(_, addr, _)| addr)
        .collect()
}

pub(crate) fn uplink(name: &str, snapshot: crate::uplink::state::UplinkSnapshot) -> UplinkFacts {
    UplinkFacts {
        link: link(name),
        snapshot,
        addresses: addresses_of(name),
        ipv6_gateway: fs::read_to_string("/proc/net/ipv6_route").ok().and_then(|t| ipv6_default_gateway(&t, name)),
    }
}

pub(crate) fn lan(
    name: &str,
    dhcp_service: Option<ServiceState>,
    ra_service: Option<ServiceState>,
    pool: Option<(u32, u32)>,
) -> LanFacts {
    let addresses = addresses_of(name);
    LanFacts {
        link: link(name),
        ipv4: addresses.iter().find_map(|a| match a {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(_) => None,
        }),
        ipv6_global: addresses
            .iter()
            .filter_map(|a| match a {
                IpAddr::V6(v6) if crate::uplink::dhcp6::lease::is_global_unicast(*v6) => Some(*v6),
                _ => None,
            })
            .collect(),
        dhcp_service: dhcp_service.map(state_name),
        dhcp_port_bound: ["/proc/net/udp", "/proc/net/udp6"]
            .iter()
            .any(|path| fs::read_to_string(path).is_ok_and(|t| udp_port_bound(&t, 67))),
        ra_service: ra_service.map(state_name),
        pool,
    }
}

/// The clock check: passed once an NTP server answered (or while the first is still being asked), failed when
/// none answers; no check without servers.
pub(crate) fn clock(
    status: &crate::timesync::ClockStatus,
    now: std::time::SystemTime,
) -> Option<Result<String, String>> {
    use crate::timesync::ClockState;
    let servers = status.servers.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    let verdict = match status.state {
        ClockState::NoServers => return None,
        ClockState::Synchronized => {
            let server = status.server.map(|s| s.to_string()).unwrap_or_default();
            let when = status
                .synchronized_at
                .and_then(|at| now.duration_since(at).ok())
                .map(|ago| format!(", {} s ago", ago.as_secs()))
                .unwrap_or_default();
            let what = if status.sets_system_clock { "set from" } else { "agrees with" };
            match &status.last_error {
                Some(problem) if status.sets_system_clock => {
                    Err(format!("{server} answered, but the clock could not be set: {problem}"))
                }
                _ => Ok(format!("{what} {server} (it was off by {:+.3} s{when})", status.offset_seconds)),
            }
        }
        ClockState::Unsynchronized => match &status.last_error {
            None => Ok(format!("asking {servers}")),
            Some(error) => Err(format!("no NTP server answered ({error}); the clock may be wrong")),
        },
    };
    Some(verdict)
}

pub(crate) fn state_name(state: ServiceState) -> String {
    match state {
        ServiceState::Starting => "starting",
        ServiceState::Running => "running",
        ServiceState::Restarting => "restarting",
        ServiceState::Stopped => "stopped",
        ServiceState::Disabled => "disabled",
    }
    .to_string()
}

/// The gateway of the IPv6 default route through `interface`, from `/proc/net/ipv6_route` (destination,
/// length, source, length, next hop, metric, refcount, use, flags, device; addresses in hex).
pub(crate) fn ipv6_default_gateway(table: &str, interface: &str) -> Option<Ipv6Addr> {
    table.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [destination, length, _, _, next_hop, _, _, _, _, device] = fields.as_slice() else { return None };
        let default = destination.bytes().all(|b| b == b'0') && *length == "00";
        let gateway = Ipv6Addr::from(u128::from_str_radix(next_hop, 16).ok()?);
        (default && *device == interface && !gateway.is_unspecified()).then_some(gateway)
    })
}

/// Whether a socket is bound to UDP `port` in a `/proc/net/udp{,6}` table (`sl local_address:PORT …`, hex).
pub(crate) fn udp_port_bound(table: &str, port: u16) -> bool {
    table.lines().skip(1).any(|line| {
        line.split_whitespace()
            .nth(1)
            .and_then(|local| local.rsplit_once(':'))
            .and_then(|(_, hex)| u16::from_str_radix(hex, 16).ok())
            == Some(port)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_route_learned_from_an_ra_names_its_gateway() {
        let table = "\
20010db8000000010000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001  uplink0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000002 00000000 00450003  uplink0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
";
        assert_eq!(ipv6_default_gateway(table, "uplink0"), Some("fe80::1".parse().expect("literal")));
        assert_eq!(ipv6_default_gateway(table, "lan0"), None);
        assert_eq!(ipv6_default_gateway(table, "lo"), None, "an unreachable route has no gateway");
        assert_eq!(ipv6_default_gateway("garbage\n\n1 2 3", "uplink0"), None);
    }

    #[test]
    fn bound_udp_ports_are_found_in_proc_tables() {
        let table = "\
   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  113: 00000000:0043 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 40213 2 0000000000000000 0
  120: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 40214 2 0000000000000000 0
";
        assert!(udp_port_bound(table, 67));
        assert!(udp_port_bound(table, 53));
        assert!(!udp_port_bound(table, 68));
        assert!(!udp_port_bound("sl local\nnonsense", 67));
    }
}
