//! Applies what the uplink learned to the kernel through rtnetlink: links up, addresses, routes, sysctls.
//! Routes always name their output interface (with two links on one subnet the kernel would otherwise pick
//! either).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
};

use futures_util::TryStreamExt;
use rtnetlink::{
    Handle, LinkUnspec, RouteMessageBuilder,
    packet_route::{
        address::AddressMessage,
        link::LinkAttribute,
        route::{RouteProtocol, RouteScope, RouteType},
    },
};

mod applied;
mod interfaces;

pub(crate) use applied::{Applied, LanPrefix};

/// The uplink's IPv4 configuration, as a DHCPv4 lease gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Config {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    /// The default gateway, when there is one.
    pub gateway: Option<Ipv4Addr>,
}

/// An IPv6 prefix (the delegated one): network address and length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    pub network: Ipv6Addr,
    pub length: u8,
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.length)
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum NetconfigError {
    #[error("opening a netlink socket: {0}")]
    Connect(std::io::Error),
    #[error("interface {0} does not exist")]
    NoSuchInterface(String),
    #[error("interface {0} has no Ethernet address")]
    NotEthernet(String),
    #[error("{what}: {source}")]
    Netlink {
        what: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("setting {key}: {source}")]
    Sysctl {
        key: String,
        #[source]
        source: std::io::Error,
    },
}

/// A handle to the kernel's network configuration.
#[derive(Clone)]
pub(crate) struct Netconfig {
    handle: Handle,
    /// What this handle (and its clones) applied; see [`Applied`].
    applied: std::sync::Arc<tokio::sync::watch::Sender<Applied>>,
}

impl Netconfig {
    /// Opens the netlink connection (its task runs on the current Tokio runtime).
    pub(crate) fn connect() -> Result<Netconfig, NetconfigError> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(NetconfigError::Connect)?;
        tokio::spawn(connection);
        let (applied, _) = tokio::sync::watch::channel(Applied::default());
        Ok(Netconfig { handle, applied: std::sync::Arc::new(applied) })
    }

    /// What netconfig has applied, now and as it changes.
    pub(crate) fn applied(&self) -> tokio::sync::watch::Receiver<Applied> {
        self.applied.subscribe()
    }

    pub(crate) async fn link_index(&self, name: &str) -> Result<u32, NetconfigError> {
        let mut links = self.handle.link().get().match_name(name.to_string()).execute();
        match links.try_next().await {
            Ok(Some(link)) => Ok(link.header.index),
            Ok(None) => Err(NetconfigError::NoSuchInterface(name.to_string())),
            // The kernel answers a lookup of a missing name with ENODEV.
            Err(_) => Err(NetconfigError::NoSuchInterface(name.to_string())),
        }
    }

    /// The link's hardware address.
    pub(crate) async fn hardware_addr(&self, name: &str) -> Result<Vec<u8>, NetconfigError> {
        let mut links = self.handle.link().get().match_name(name.to_string()).execute();
        let link =
            links.try_next().await.ok().flatten().ok_or_else(|| NetconfigError::NoSuchInterface(name.to_string()))?;
        Ok(link
            .attributes
            .into_iter()
            .find_map(|a| match a {
                LinkAttribute::Address(mac) => Some(mac),
                _ => None,
            })
            .unwrap_or_default())
    }

    /// The MAC a DHCP client identifies with: `spoofed` (interfaces.json's spoof_hardware_addr) if set, else
    /// the link's own Ethernet address.
    pub(crate) async fn ethernet_addr(&self, name: &str, spoofed: Option<[u8; 6]>) -> Result<[u8; 6], NetconfigError> {
        if let Some(mac) = spoofed {
            return Ok(mac);
        }
        let mac = self.hardware_addr(name).await?;
        <[u8; 6]>::try_from(mac.as_slice()).map_err(|_| NetconfigError::NotEthernet(name.to_string()))
    }

    pub(crate) async fn set_up(&self, index: u32) -> Result<(), NetconfigError> {
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(|source| NetconfigError::Netlink { what: format!("setting link {index} up"), source })
    }

    pub(crate) async fn replace_address(
        &self,
        index: u32,
        address: IpAddr,
        prefix_len: u8,
    ) -> Result<(), NetconfigError> {
        self.handle.address().add(index, address, prefix_len).replace().execute().await.map_err(|source| {
            NetconfigError::Netlink { what: format!("adding {address}/{prefix_len} to link {index}"), source }
        })
    }

    pub(crate) async fn remove_address(&self, index: u32, address: IpAddr) -> Result<(), NetconfigError> {
        let messages: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .set_address_filter(address)
            .execute()
            .try_collect()
            .await
            .map_err(|source| NetconfigError::Netlink { what: format!("finding {address}"), source })?;
        for message in messages {
            self.handle
                .address()
                .del(message)
                .execute()
                .await
                .map_err(|source| NetconfigError::Netlink { what: format!("removing {address}"), source })?;
        }
        Ok(())
    }

    /// Removes a released lease's address from the uplink (its routes go with it).
    pub(crate) async fn remove_dhcp4(&self, uplink: &str, address: Ipv4Addr) -> Result<(), NetconfigError> {
        let index = self.link_index(uplink).await?;
        self.remove_address(index, IpAddr::V4(address)).await?;
        self.applied.send_if_modified(|applied| {
            let ours = applied.uplink_ipv4.is_some_and(|c| c.address == address);
            if ours {
                applied.uplink_ipv4 = None;
            }
            ours
        });
        Ok(())
    }

    /// Configures the uplink for a DHCPv4 lease: the address with its prefix length, a host route to the gateway
    /// and the default route through it, then removes the previous lease's address if it differs.
    pub(crate) async fn apply_dhcp4(
        &self,
        uplink: &str,
        lease: Ipv4Config,
        previous: Option<Ipv4Config>,
    ) -> Result<(), NetconfigError> {
        let index = self.link_index(uplink).await?;
        self.set_up(index).await?;
        self.replace_address(index, IpAddr::V4(lease.address), lease.prefix_len).await?;
        if let Some(gateway) = lease.gateway {
            // On-link even when outside the subnet (some ISPs hand out /32s).
            let host_route = RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(gateway, 32)
                .output_interface(index)
                .scope(RouteScope::Link)
                .protocol(RouteProtocol::Dhcp)
                .build();
            self.handle.route().add(host_route).replace().execute().await.map_err(|source| {
                NetconfigError::Netlink { what: format!("adding the host route to gateway {gateway}"), source }
            })?;
            let default = RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(Ipv4Addr::UNSPECIFIED, 0)
                .gateway(gateway)
                .output_interface(index)
                .protocol(RouteProtocol::Dhcp)
                .build();
            self.handle.route().add(default).replace().execute().await.map_err(|source| NetconfigError::Netlink {
                what: format!("adding the default route via {gateway}"),
                source,
            })?;
        }
        if let Some(previous) = previous.filter(|p| p.address != lease.address || p.prefix_len != lease.prefix_len) {
            // Also removes the routes that depended on it.
            self.remove_address(index, IpAddr::V4(previous.address)).await?;
        }
        self.applied.send_if_modified(|applied| applied.uplink_ipv4.replace(lease) != Some(lease));
        Ok(())
    }
}

impl Netconfig {
    /// The DHCPv6 IA_NA address on the uplink (a /128), replacing the previous one.
    pub(crate) async fn apply_dhcp6_address(
        &self,
        uplink: &str,
        address: Option<Ipv6Addr>,
        previous: Option<Ipv6Addr>,
    ) -> Result<(), NetconfigError> {
        let index = self.link_index(uplink).await?;
        if let Some(address) = address {
            self.replace_address(index, IpAddr::V6(address), 128).await?;
        }
        if let Some(previous) = previous.filter(|p| Some(*p) != address) {
            self.remove_address(index, IpAddr::V6(previous)).await?;
        }
        self.applied.send_if_modified(|applied| std::mem::replace(&mut applied.uplink_ipv6, address) != address);
        Ok(())
    }

    /// Splits the delegated prefix into /64s: `lanN` gets subnet N with `::1/64`; an unreachable route covers
    /// the rest of the prefix, so traffic to unused subnets is not sent back to the ISP. The previous prefix's
    /// /64s and route are removed when the prefix changed. Returns what each LAN got.
    pub(crate) async fn apply_prefix(
        &self,
        lans: &[(String, u32)],
        prefix: Option<Prefix>,
        previous: Option<Prefix>,
    ) -> Result<Vec<LanPrefix>, NetconfigError> {
        let mut assigned = Vec::new();
        if let Some(prefix) = prefix {
            for (name, number) in lans {
                let Some(subnet) = lan_subnet(prefix, *number) else {
                    tracing::warn!("{prefix} has no subnet {number} for {name}");
                    continue;
                };
                let address = router_address(subnet);
                let index = self.link_index(name).await?;
                self.replace_address(index, IpAddr::V6(address), 64).await?;
                assigned.push(LanPrefix { lan: name.clone(), subnet, router: address });
            }
            let unreachable = RouteMessageBuilder::<Ipv6Addr>::new()
                .destination_prefix(prefix.network, prefix.length)
                .kind(RouteType::Unreachable)
                .protocol(RouteProtocol::Dhcp)
                .build();
            self.handle.route().add(unreachable).replace().execute().await.map_err(|source| {
                NetconfigError::Netlink { what: format!("adding the unreachable route for {prefix}"), source }
            })?;
        }
        if let Some(previous) = previous.filter(|p| Some(*p) != prefix) {
            for (name, number) in lans {
                if let (Some(subnet), Ok(index)) = (lan_subnet(previous, *number), self.link_index(name).await) {
                    self.remove_address(index, IpAddr::V6(router_address(subnet))).await?;
                }
            }
            // Deleting matches on the protocol too (the builder's default is "static").
            let old = RouteMessageBuilder::<Ipv6Addr>::new()
                .destination_prefix(previous.network, previous.length)
                .kind(RouteType::Unreachable)
                .protocol(RouteProtocol::Dhcp)
                .build();
            if let Err(error) = self.handle.route().del(old).execute().await {
                tracing::warn!("removing the unreachable route for {previous}: {error}");
            }
        }
        self.applied.send_if_modified(|applied| {
            let changed = applied.delegated != prefix || applied.lan_prefixes != assigned;
            applied.delegated = prefix;
            applied.lan_prefixes = assigned.clone();
            changed
        });
        Ok(assigned)
    }
}

/// The /64 number `number` of a delegated prefix, if the prefix has that many.
pub(crate) fn lan_subnet(prefix: Prefix, number: u32) -> Option<Ipv6Addr> {
    let subnets_bits = 64u32.checked_sub(u32::from(prefix.length))?;
    if subnets_bits < 32 && u64::from(number) >= 1u64 << subnets_bits {
        return None;
    }
    Some(Ipv6Addr::from(u128::from(prefix.network) | (u128::from(number) << 64)))
}

/// The router's own address in a LAN's /64: `::1`.
pub(crate) fn router_address(subnet: Ipv6Addr) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(subnet) | 1)
}

/// Writes a sysctl under /proc/sys (e.g. `net/ipv4/ip_forward`).
pub(crate) fn set_sysctl(key: &str, value: &str) -> Result<(), NetconfigError> {
    std::fs::write(Path::new("/proc/sys").join(key), value)
        .map_err(|source| NetconfigError::Sysctl { key: key.replace('/', "."), source })
}

/// What a router's uplink needs whether or not it forwards: router advertisements still accepted once
/// forwarding is on (the kernel ignores them then unless accept_ra is 2, and the ISP's RA gives the IPv6 default
/// route), and bridge netfilter off.
pub(crate) fn prepare_uplink(uplink: &str) -> Vec<NetconfigError> {
    let mut problems: Vec<NetconfigError> =
        set_sysctl(&format!("net/ipv6/conf/{uplink}/accept_ra"), "2").err().into_iter().collect();
    // With br_netfilter loaded (built into some kernels, on in every namespace), packets bridged inside a LAN
    // bridge also pass the IP hooks, and hairpin NAT breaks: the reply is bridged back instead of routed.
    for key in BRIDGE_NETFILTER {
        if Path::new("/proc/sys").join(key).exists()
            && let Err(error) = set_sysctl(key, "0")
        {
            problems.push(error);
        }
    }
    problems
}

const BRIDGE_NETFILTER: &[&str] = &[
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "net/bridge/bridge-nf-call-arptables",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(text: &str, length: u8) -> Prefix {
        Prefix { network: text.parse().expect("literal"), length }
    }

    #[test]
    fn lans_get_consecutive_64s_of_the_delegated_prefix() {
        let p48 = prefix("2a02:168:4a00::", 48);
        assert_eq!(lan_subnet(p48, 0), Some("2a02:168:4a00::".parse().expect("literal")));
        assert_eq!(lan_subnet(p48, 1), Some("2a02:168:4a00:1::".parse().expect("literal")));
        assert_eq!(
            router_address(lan_subnet(p48, 2).expect("subnet")),
            "2a02:168:4a00:2::1".parse::<Ipv6Addr>().expect("literal")
        );
        let p56 = prefix("2001:db8:100:ff00::", 56);
        assert_eq!(lan_subnet(p56, 255), Some("2001:db8:100:ffff::".parse().expect("literal")));
        assert_eq!(lan_subnet(p56, 256), None, "a /56 has 256 subnets");
        let p64 = prefix("2001:db8:1:2::", 64);
        assert_eq!(lan_subnet(p64, 0), Some("2001:db8:1:2::".parse().expect("literal")));
        assert_eq!(lan_subnet(p64, 1), None, "a /64 is one LAN");
    }
}
