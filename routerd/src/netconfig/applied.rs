//! What netconfig has put into the kernel, published on a watch channel for the services that depend on it
//! (radvd advertises the LANs' /64s, DNS answers with the router's addresses and protects the house's own
//! networks from rebinding), so none of them works it out again or reads it back from the kernel.

use std::net::{IpAddr, Ipv6Addr};

use super::{Ipv4Config, Prefix};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Applied {
    /// The uplink's IPv4 configuration from the DHCPv4 lease.
    pub uplink_ipv4: Option<Ipv4Config>,
    /// The uplink's IPv6 address from the DHCPv6 lease (IA_NA).
    pub uplink_ipv6: Option<Ipv6Addr>,
    /// The delegated prefix the LANs' /64s were taken from.
    pub delegated: Option<Prefix>,
    /// Each LAN's /64 of the delegated prefix.
    pub lan_prefixes: Vec<LanPrefix>,
    /// The addresses interfaces.json gave each interface (`addr` and `extra_addrs`), by interface name.
    pub interface_addresses: Vec<(String, IpAddr)>,
}

impl Applied {
    /// The router's own addresses on `interfaces`: from interfaces.json, and its address in each one's /64.
    pub(crate) fn addresses_on(&self, interfaces: &[String]) -> Vec<IpAddr> {
        let configured = self.interface_addresses.iter().filter(|(name, _)| interfaces.contains(name));
        let delegated = self.lan_prefixes.iter().filter(|p| interfaces.contains(&p.lan));
        configured.map(|(_, address)| *address).chain(delegated.map(|p| IpAddr::V6(p.router))).collect()
    }

    /// The house's own public networks: the uplink's addresses and the delegated prefix.
    pub(crate) fn own_networks(&self) -> Vec<(IpAddr, u8)> {
        let mut inside = Vec::new();
        inside.extend(self.uplink_ipv4.map(|c| (IpAddr::V4(c.address), 32)));
        inside.extend(self.delegated.map(|p| (IpAddr::V6(p.network), p.length)));
        inside.extend(self.uplink_ipv6.map(|a| (IpAddr::V6(a), 128)));
        inside
    }
}

/// One LAN's /64 and the router's address in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LanPrefix {
    pub lan: String,
    pub subnet: Ipv6Addr,
    pub router: Ipv6Addr,
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn the_routers_addresses_and_the_houses_networks_come_from_what_was_applied() {
        let subnet: Ipv6Addr = "2001:db8:100:1::".parse().expect("literal");
        let router: Ipv6Addr = "2001:db8:100:1::1".parse().expect("literal");
        let applied = Applied {
            uplink_ipv4: Some(Ipv4Config {
                address: Ipv4Addr::new(198, 51, 100, 7),
                prefix_len: 24,
                gateway: Some(Ipv4Addr::new(198, 51, 100, 1)),
            }),
            uplink_ipv6: None,
            delegated: Some(Prefix { network: "2001:db8:100::".parse().expect("literal"), length: 56 }),
            lan_prefixes: vec![LanPrefix { lan: "lan1".into(), subnet, router }],
            interface_addresses: vec![
                ("lan0".into(), IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
                ("lan1".into(), IpAddr::V4(Ipv4Addr::new(198, 51, 100, 129))),
                ("uplink0".into(), IpAddr::V4(Ipv4Addr::new(203, 0, 113, 2))),
            ],
        };
        let lans = ["lan0".to_string(), "lan1".to_string()];
        assert_eq!(
            applied.addresses_on(&lans),
            [IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), IpAddr::V4(Ipv4Addr::new(198, 51, 100, 129)), IpAddr::V6(router)]
        );
        assert_eq!(applied.addresses_on(&lans[..1]), [IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))]);
        assert_eq!(
            applied.own_networks(),
            [
                (IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)), 32),
                (IpAddr::V6("2001:db8:100::".parse().expect("literal")), 56)
            ]
        );
    }
}
