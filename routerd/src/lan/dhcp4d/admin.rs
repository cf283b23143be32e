//! The owner's changes to the lease table (a device's name, static leases), decided in the I/O-free core like
//! the protocol's own decisions: checked against the pools and the leases there are, and applied through the
//! server's `put_lease`/`remove_lease`, so its address map and change report stay right. The service only
//! persists and publishes what changed.

use std::{net::Ipv4Addr, time::SystemTime};

use super::{Lease, Mac, Server, commands::LeaseCommand, commands::LeaseCommandError, format_mac};
use crate::lan::hostname;

/// Applies an API command to the LANs' servers at `now`: the lease it created or changed, if any.
pub(crate) fn apply_command(
    servers: &mut [Server],
    command: LeaseCommand,
    now: SystemTime,
) -> Result<Option<Lease>, LeaseCommandError> {
    match command {
        LeaseCommand::SetHostname { mac, hostname } => {
            let server = servers
                .iter_mut()
                .find(|s| s.leases().by_mac(&mac).is_some())
                .ok_or_else(|| LeaseCommandError::NotFound(format!("no lease for {}", format_mac(&mac))))?;
            server.set_hostname(mac, hostname).map(Some)
        }
        LeaseCommand::AddStatic { mac, addr, hostname } => {
            let server = servers.iter_mut().find(|s| s.config().contains_host(addr)).ok_or_else(|| {
                LeaseCommandError::Invalid(format!("{addr} is not a host address of any LAN's subnet"))
            })?;
            server.add_static(mac, addr, hostname, now).map(Some)
        }
        LeaseCommand::RemoveStatic { mac } => {
            let server = servers
                .iter_mut()
                .find(|s| s.leases().by_mac(&mac).is_some_and(Lease::is_static))
                .ok_or_else(|| LeaseCommandError::NotFound(format!("no static lease for {}", format_mac(&mac))))?;
            server.remove_lease(&mac);
            tracing::info!("static lease for {} removed", format_mac(&mac));
            Ok(None)
        }
        // The service writes the file itself (it owns the journal).
        LeaseCommand::WriteFile => Ok(None),
    }
}

impl Server {
    /// Names the device with lease `mac` (the owner's name wins over the one it sends); `None` clears it.
    pub(crate) fn set_hostname(&mut self, mac: Mac, name: Option<String>) -> Result<Lease, LeaseCommandError> {
        let label = match name {
            Some(name) => Some(hostname::sanitize(&name).ok_or_else(|| {
                LeaseCommandError::Invalid(format!("{name:?} has no letters or digits to make a DNS name of"))
            })?),
            None => None,
        };
        let mut lease = self
            .leases()
            .by_mac(&mac)
            .cloned()
            .ok_or_else(|| LeaseCommandError::NotFound(format!("no lease for {}", format_mac(&mac))))?;
        lease.hostname_override = label;
        self.put_lease(lease.clone());
        tracing::info!("name of {} set to {:?}", format_mac(&mac), lease.name());
        Ok(lease)
    }

    /// Gives `mac` the address `addr` from now on (inside this LAN's subnet, also outside the DHCP range). Refused
    /// for the router's own address and for an address another device holds (statically, or by a lease that
    /// has not expired at `now`); the device's own lease, name and last ACK carry over.
    pub(crate) fn add_static(
        &mut self,
        mac: Mac,
        addr: Ipv4Addr,
        name: Option<String>,
        now: SystemTime,
    ) -> Result<Lease, LeaseCommandError> {
        if !self.config().contains_host(addr) {
            return Err(LeaseCommandError::Invalid(format!(
                "{addr} is not a host address of {}",
                self.config().interface
            )));
        }
        if addr == self.config().server_addr {
            return Err(LeaseCommandError::Invalid(format!("{addr} is the router's own address")));
        }
        if let Some(other) = self.leases().by_addr(addr).filter(|l| l.hardware_addr != mac)
            && (other.is_static() || !other.expired(now))
        {
            return Err(LeaseCommandError::Conflict(format!(
                "{addr} is leased to {}{}; remove that lease first",
                format_mac(&other.hardware_addr),
                if other.is_static() { " (static)" } else { "" }
            )));
        }
        let previous = self.leases().by_mac(&mac).cloned();
        let lease = Lease {
            num: addr.to_bits().saturating_sub(self.config().first.to_bits()),
            addr,
            hardware_addr: mac,
            hostname: name
                .as_deref()
                .and_then(hostname::sanitize)
                .or(previous.as_ref().and_then(|p| p.hostname.clone())),
            hostname_override: previous.as_ref().and_then(|p| p.hostname_override.clone()),
            expiry: None,
            last_ack: previous.and_then(|p| p.last_ack),
            interface: self.config().interface.clone(),
        };
        self.put_lease(lease.clone());
        tracing::info!("static lease {addr} for {}", format_mac(&mac));
        Ok(lease)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::lan::dhcp4d::PoolConfig;

    const ROUTER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const PHONE: Mac = [0x02, 0, 0, 0, 0x30, 0x01];
    const PRINTER: Mac = [0x02, 0, 0, 0, 0x30, 0x02];

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + seconds)
    }

    /// One LAN whose phone holds 192.0.2.23 until `at(600)`.
    fn servers() -> Vec<Server> {
        let pool = PoolConfig::whole_subnet("lan0", ROUTER, 24).expect("a /24 pool");
        let phone = Lease {
            num: 22,
            addr: Ipv4Addr::new(192, 0, 2, 23),
            hardware_addr: PHONE,
            hostname: Some("phone".into()),
            hostname_override: None,
            expiry: Some(at(600)),
            last_ack: Some(at(0)),
            interface: "lan0".into(),
        };
        vec![Server::new(pool, [phone])]
    }

    fn add(
        addr: [u8; 4],
        mac: Mac,
        now: SystemTime,
        servers: &mut [Server],
    ) -> Result<Option<Lease>, LeaseCommandError> {
        let command = LeaseCommand::AddStatic { mac, addr: Ipv4Addr::from(addr), hostname: Some("Printer 2".into()) };
        apply_command(servers, command, now)
    }

    #[test]
    fn a_static_lease_is_refused_where_it_would_take_what_is_not_free() {
        let mut servers = servers();
        let outside = add([198, 51, 100, 7], PRINTER, at(10), &mut servers);
        assert!(matches!(outside, Err(LeaseCommandError::Invalid(ref m)) if m.contains("not a host address")));
        let broadcast = add([192, 0, 2, 255], PRINTER, at(10), &mut servers);
        assert!(matches!(broadcast, Err(LeaseCommandError::Invalid(_))), "{broadcast:?}");
        let router = add([192, 0, 2, 1], PRINTER, at(10), &mut servers);
        assert!(matches!(router, Err(LeaseCommandError::Invalid(ref m)) if m.contains("router's own")));
        let taken = add([192, 0, 2, 23], PRINTER, at(10), &mut servers);
        assert!(matches!(taken, Err(LeaseCommandError::Conflict(ref m)) if m.contains("02:00:00:00:30:01")));
        assert!(servers[0].leases().by_mac(&PRINTER).is_none(), "nothing changed");
    }

    #[test]
    fn an_expired_lease_gives_its_address_up_and_a_device_moving_to_a_static_one_keeps_its_history() {
        let mut servers = servers();
        let lease = add([192, 0, 2, 23], PRINTER, at(601), &mut servers).expect("added").expect("a lease");
        assert!(lease.is_static() && lease.hostname.as_deref() == Some("printer-2"), "{lease:?}");
        assert_eq!(servers[0].leases().by_addr(Ipv4Addr::new(192, 0, 2, 23)).map(|l| l.hardware_addr), Some(PRINTER));
        // Another static lease for the same address is refused even long after.
        let again = add([192, 0, 2, 23], PHONE, at(100_000), &mut servers);
        assert!(matches!(again, Err(LeaseCommandError::Conflict(ref m)) if m.contains("(static)")));
        // The phone moves to a static address: the name given wins, its last ACK carries over.
        let mut servers = self::servers();
        let phone = add([192, 0, 2, 50], PHONE, at(10), &mut servers).expect("added").expect("a lease");
        assert_eq!((phone.hostname.as_deref(), phone.last_ack), (Some("printer-2"), Some(at(0))));
        assert!(servers[0].leases().by_addr(Ipv4Addr::new(192, 0, 2, 23)).is_none(), "the old address is free");
    }

    #[test]
    fn names_and_removals_find_their_lease_or_say_so() {
        let mut servers = servers();
        let named = apply_command(
            &mut servers,
            LeaseCommand::SetHostname { mac: PHONE, hostname: Some("Kitchen Tablet".into()) },
            at(1),
        );
        assert_eq!(named.expect("named").and_then(|l| l.hostname_override), Some("kitchen-tablet".into()));
        let bad =
            apply_command(&mut servers, LeaseCommand::SetHostname { mac: PHONE, hostname: Some("???".into()) }, at(1));
        assert!(matches!(bad, Err(LeaseCommandError::Invalid(_))));
        let nobody = apply_command(&mut servers, LeaseCommand::SetHostname { mac: PRINTER, hostname: None }, at(1));
        assert!(matches!(nobody, Err(LeaseCommandError::NotFound(_))));
        let not_static = apply_command(&mut servers, LeaseCommand::RemoveStatic { mac: PHONE }, at(1));
        assert!(matches!(not_static, Err(LeaseCommandError::NotFound(ref m)) if m.contains("no static lease")));
        add([192, 0, 2, 60], PRINTER, at(1), &mut servers).expect("added");
        assert_eq!(apply_command(&mut servers, LeaseCommand::RemoveStatic { mac: PRINTER }, at(2)), Ok(None));
        assert!(servers[0].leases().by_mac(&PRINTER).is_none());
    }
}
