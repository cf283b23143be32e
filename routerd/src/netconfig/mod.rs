//! Applies what the uplink learned to the kernel through rtnetlink: links up, addresses, routes, sysctls.
//! Routes always name their output interface (with two links on one subnet the kernel would otherwise pick
//! either).

use std::{
    net::{IpAddr, Ipv4Addr},
    path::Path,
};

use futures_util::TryStreamExt;
use rtnetlink::{
    Handle, LinkUnspec, RouteMessageBuilder,
    packet_route::{
        address::{AddressAttribute, AddressMessage},
        link::LinkAttribute,
        route::{RouteProtocol, RouteScope},
    },
};

use crate::uplink::dhcp4::Lease;

#[derive(Debug, thiserror::Error)]
pub enum NetconfigError {
    #[error("opening a netlink socket: {0}")]
    Connect(std::io::Error),
    #[error("interface {0} does not exist")]
    NoSuchInterface(String),
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
pub struct Netconfig {
    handle: Handle,
}

impl Netconfig {
    /// Opens the netlink connection (its task runs on the current Tokio runtime).
    pub fn connect() -> Result<Netconfig, NetconfigError> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(NetconfigError::Connect)?;
        tokio::spawn(connection);
        Ok(Netconfig { handle })
    }

    pub async fn link_index(&self, name: &str) -> Result<u32, NetconfigError> {
        let mut links = self.handle.link().get().match_name(name.to_string()).execute();
        match links.try_next().await {
            Ok(Some(link)) => Ok(link.header.index),
            Ok(None) => Err(NetconfigError::NoSuchInterface(name.to_string())),
            // The kernel answers a lookup of a missing name with ENODEV.
            Err(_) => Err(NetconfigError::NoSuchInterface(name.to_string())),
        }
    }

    /// The link's hardware address.
    pub async fn hardware_addr(&self, name: &str) -> Result<Vec<u8>, NetconfigError> {
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

    pub async fn set_up(&self, index: u32) -> Result<(), NetconfigError> {
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(|source| NetconfigError::Netlink { what: format!("setting link {index} up"), source })
    }

    /// Addresses of one family on a link.
    pub async fn addresses(&self, index: u32) -> Result<Vec<(IpAddr, u8)>, NetconfigError> {
        let messages: Vec<AddressMessage> =
            self.handle.address().get().set_link_index_filter(index).execute().try_collect().await.map_err(
                |source| NetconfigError::Netlink { what: format!("listing addresses of link {index}"), source },
            )?;
        Ok(messages
            .into_iter()
            .filter_map(|m| {
                let len = m.header.prefix_len;
                m.attributes.into_iter().find_map(|a| match a {
                    AddressAttribute::Address(ip) => Some((ip, len)),
                    _ => None,
                })
            })
            .collect())
    }

    pub async fn replace_address(&self, index: u32, address: IpAddr, prefix_len: u8) -> Result<(), NetconfigError> {
        self.handle.address().add(index, address, prefix_len).replace().execute().await.map_err(|source| {
            NetconfigError::Netlink { what: format!("adding {address}/{prefix_len} to link {index}"), source }
        })
    }

    pub async fn remove_address(&self, index: u32, address: IpAddr) -> Result<(), NetconfigError> {
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

    /// Configures the uplink for a DHCPv4 lease: the address with its prefix length, a host route to the gateway
    /// and the default route through it, then removes the previous lease's address if it differs.
    pub async fn apply_dhcp4(
        &self,
        uplink: &str,
        lease: &Lease,
        previous: Option<&Lease>,
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
        Ok(())
    }
}

/// Writes a sysctl under /proc/sys (e.g. `net/ipv4/ip_forward`).
pub fn set_sysctl(key: &str, value: &str) -> Result<(), NetconfigError> {
    std::fs::write(Path::new("/proc/sys").join(key), value)
        .map_err(|source| NetconfigError::Sysctl { key: key.replace('/', "."), source })
}

/// What a router needs from the kernel: forwarding on, and router advertisements still accepted on the uplink
/// (with forwarding on, the kernel ignores them unless accept_ra is 2), so the ISP's RA gives the IPv6 default
/// route.
pub fn enable_routing(uplink: &str) -> Vec<NetconfigError> {
    let settings = [
        ("net/ipv4/ip_forward".to_string(), "1"),
        ("net/ipv6/conf/all/forwarding".to_string(), "1"),
        (format!("net/ipv6/conf/{uplink}/accept_ra"), "2"),
    ];
    settings.iter().filter_map(|(key, value)| set_sysctl(key, value).err()).collect()
}
