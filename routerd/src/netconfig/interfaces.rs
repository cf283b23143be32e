//! Applies interfaces.json (router7's schema): interfaces renamed by MAC, spoofed MACs, MTUs, links up, static
//! addresses and routes, and bridges. What cannot be applied is reported and the rest still is: a router with
//! one missing NIC keeps serving on the others.

use std::net::IpAddr;

use futures_util::TryStreamExt;
use rtnetlink::{
    LinkBridge, LinkUnspec, RouteMessageBuilder,
    packet_route::{link::LinkAttribute, route::RouteProtocol},
};

use super::{Netconfig, NetconfigError};
use crate::config::{InterfaceConfig, InterfacesFile, parse_cidr, parse_mac};

impl Netconfig {
    /// The name of the link with this MAC, if any.
    async fn name_by_mac(&self, mac: [u8; 6]) -> Result<Option<(u32, String)>, NetconfigError> {
        let links: Vec<_> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|source| NetconfigError::Netlink { what: "listing links".into(), source })?;
        Ok(links.into_iter().find_map(|link| {
            let index = link.header.index;
            let mut address = None;
            let mut name = None;
            for attribute in link.attributes {
                match attribute {
                    LinkAttribute::Address(a) => address = Some(a),
                    LinkAttribute::IfName(n) => name = Some(n),
                    _ => {}
                }
            }
            (address.as_deref() == Some(&mac[..])).then_some((index, name?))
        }))
    }

    async fn set(
        &self,
        message: rtnetlink::packet_route::link::LinkMessage,
        what: String,
    ) -> Result<(), NetconfigError> {
        self.handle.link().set(message).execute().await.map_err(|source| NetconfigError::Netlink { what, source })
    }

    /// Applies one interface's settings; returns its index.
    async fn apply_interface(&self, interface: &InterfaceConfig) -> Result<u32, NetconfigError> {
        let name = interface.name.as_str();
        let mut index = self.link_index(name).await.ok();
        if let Some(mac) = parse_mac(&interface.hardware_addr)
            && let Some((found, current)) = self.name_by_mac(mac).await?
            && current != name
        {
            // A link can only be renamed while it is down.
            tracing::info!("renaming {current} ({}) to {name}", interface.hardware_addr);
            self.set(LinkUnspec::new_with_index(found).down().build(), format!("setting {current} down")).await?;
            self.set(
                LinkUnspec::new_with_index(found).name(name.to_string()).build(),
                format!("renaming {current} to {name}"),
            )
            .await?;
            index = Some(found);
        }
        let index = index.ok_or_else(|| NetconfigError::NoSuchInterface(name.to_string()))?;
        if let Some(mac) = parse_mac(&interface.spoof_hardware_addr) {
            self.set(
                LinkUnspec::new_with_index(index).address(mac.to_vec()).build(),
                format!("setting the MAC of {name}"),
            )
            .await?;
        }
        if interface.mtu > 0 {
            self.set(
                LinkUnspec::new_with_index(index).mtu(interface.mtu).build(),
                format!("setting the MTU of {name}"),
            )
            .await?;
        }
        self.set_up(index).await?;
        for cidr in std::iter::once(&interface.addr).chain(&interface.extra_addrs).filter(|c| !c.is_empty()) {
            // The configuration was validated when loaded; an unparsable entry was reported there.
            if let Some((address, prefix_len)) = parse_cidr(cidr) {
                self.replace_address(index, address, prefix_len).await?;
                let entry = (interface.name.clone(), address);
                self.applied.send_if_modified(|applied| {
                    let new = !applied.interface_addresses.contains(&entry);
                    if new {
                        applied.interface_addresses.push(entry.clone());
                    }
                    new
                });
            }
        }
        for route in &interface.extra_routes {
            let (Some((destination, prefix_len)), Ok(gateway)) =
                (parse_cidr(&route.destination), route.gateway.parse::<IpAddr>())
            else {
                continue;
            };
            let message = match (destination, gateway) {
                (IpAddr::V4(d), IpAddr::V4(g)) => RouteMessageBuilder::<std::net::Ipv4Addr>::new()
                    .destination_prefix(d, prefix_len)
                    .gateway(g)
                    .output_interface(index)
                    .protocol(RouteProtocol::Static)
                    .build(),
                (IpAddr::V6(d), IpAddr::V6(g)) => RouteMessageBuilder::<std::net::Ipv6Addr>::new()
                    .destination_prefix(d, prefix_len)
                    .gateway(g)
                    .output_interface(index)
                    .protocol(RouteProtocol::Static)
                    .build(),
                _ => continue,
            };
            self.handle.route().add(message).replace().execute().await.map_err(|source| NetconfigError::Netlink {
                what: format!("adding the route to {} via {} on {name}", route.destination, route.gateway),
                source,
            })?;
        }
        Ok(index)
    }

    /// Applies interfaces.json and returns one message per thing that could not be applied.
    pub(crate) async fn apply_interfaces(&self, file: &InterfacesFile) -> Vec<String> {
        let mut problems = Vec::new();
        for bridge in &file.bridges {
            if let Err(error) = self.apply_bridge(&bridge.name, &bridge.interface_hardware_addrs).await {
                problems.push(format!("bridge {}: {error}", bridge.name));
            }
        }
        for interface in &file.interfaces {
            if let Err(error) = self.apply_interface(interface).await {
                problems.push(format!("interface {}: {error}", interface.name));
            }
        }
        problems
    }

    async fn apply_bridge(&self, name: &str, members: &[String]) -> Result<(), NetconfigError> {
        let bridge =
            match self.link_index(name).await {
                Ok(index) => index,
                Err(_) => {
                    tracing::info!("creating bridge {name}");
                    self.handle.link().add(LinkBridge::new(name).build()).execute().await.map_err(|source| {
                        NetconfigError::Netlink { what: format!("creating bridge {name}"), source }
                    })?;
                    self.link_index(name).await?
                }
            };
        for mac in members {
            let Some(parsed) = parse_mac(mac) else { continue };
            let Some((index, member)) = self.name_by_mac(parsed).await? else {
                tracing::warn!("bridge {name}: no interface has the MAC {mac}");
                continue;
            };
            self.set(
                LinkUnspec::new_with_index(index).controller(bridge).build(),
                format!("adding {member} to {name}"),
            )
            .await?;
            self.set_up(index).await?;
        }
        self.set_up(bridge).await
    }
}
