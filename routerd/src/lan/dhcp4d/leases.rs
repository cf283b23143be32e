//! The leases the DHCPv4 server hands out, and their file `dhcp4d/leases.json` in router7's schema: a JSON
//! array of `{num, addr, hardware_addr, hostname, hostname_override, expiry, last_ack}`, where a zero `expiry`
//! (`0001-01-01T00:00:00Z`, Go's zero time) marks a static lease.

use std::{
    collections::{BTreeMap, HashMap},
    net::Ipv4Addr,
    time::SystemTime,
};

use serde::{Deserialize, Serialize};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{config::parse_mac, uplink::lease_times::rfc3339};

pub(crate) type Mac = [u8; 6];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The address's offset from the start of the pool (router7's `num`).
    pub num: u32,
    pub addr: Ipv4Addr,
    pub hardware_addr: Mac,
    /// What the client sent, as a DNS label.
    pub hostname: Option<String>,
    /// Set by the owner; wins over the client's.
    pub hostname_override: Option<String>,
    /// `None` for a static lease.
    pub expiry: Option<SystemTime>,
    pub last_ack: Option<SystemTime>,
    pub interface: String,
}

impl Lease {
    pub fn is_static(&self) -> bool {
        self.expiry.is_none()
    }

    pub fn expired(&self, now: SystemTime) -> bool {
        self.expiry.is_some_and(|expiry| expiry <= now)
    }

    /// The name DNS answers for this lease.
    pub fn name(&self) -> Option<&str> {
        self.hostname_override.as_deref().or(self.hostname.as_deref())
    }
}

pub(crate) fn format_mac(mac: &Mac) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Leases indexed by hardware address and by address.
#[derive(Clone, Debug, Default)]
pub(crate) struct LeaseTable {
    by_mac: HashMap<Mac, Lease>,
    by_addr: BTreeMap<Ipv4Addr, Mac>,
}

impl LeaseTable {
    pub(crate) fn by_mac(&self, mac: &Mac) -> Option<&Lease> {
        self.by_mac.get(mac)
    }

    pub(crate) fn by_addr(&self, addr: Ipv4Addr) -> Option<&Lease> {
        self.by_addr.get(&addr).and_then(|mac| self.by_mac.get(mac))
    }

    /// Inserts or replaces the lease of its hardware address (and takes its address from whoever had it).
    pub(crate) fn insert(&mut self, lease: Lease) {
        if let Some(old) = self.by_mac.remove(&lease.hardware_addr) {
            self.by_addr.remove(&old.addr);
        }
        if let Some(previous_owner) = self.by_addr.insert(lease.addr, lease.hardware_addr) {
            self.by_mac.remove(&previous_owner);
        }
        self.by_mac.insert(lease.hardware_addr, lease);
    }

    pub(crate) fn remove(&mut self, mac: &Mac) -> Option<Lease> {
        let lease = self.by_mac.remove(mac)?;
        self.by_addr.remove(&lease.addr);
        Some(lease)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Lease> {
        self.by_addr.values().filter_map(|mac| self.by_mac.get(mac))
    }

    /// The leases of the addresses `first..=last`, by address.
    pub(crate) fn in_range(&self, first: Ipv4Addr, last: Ipv4Addr) -> impl Iterator<Item = &Lease> {
        self.by_addr.range(first..=last).filter_map(|(_, mac)| self.by_mac.get(mac))
    }

    pub(crate) fn len(&self) -> usize {
        self.by_mac.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.by_mac.is_empty()
    }
}

/// One entry of `dhcp4d/leases.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LeaseRecord {
    #[serde(default)]
    pub num: i64,
    pub addr: String,
    pub hardware_addr: String,
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub hostname_override: String,
    #[serde(default = "go_zero_time")]
    pub expiry: String,
    #[serde(default)]
    pub last_ack: String,
    /// routerd's addition: which LAN (router7 has one).
    #[serde(default)]
    pub interface: String,
}

const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn go_zero_time() -> String {
    GO_ZERO_TIME.to_string()
}

impl LeaseRecord {
    pub(crate) fn from_lease(lease: &Lease) -> LeaseRecord {
        LeaseRecord {
            num: i64::from(lease.num),
            addr: lease.addr.to_string(),
            hardware_addr: format_mac(&lease.hardware_addr),
            hostname: lease.hostname.clone().unwrap_or_default(),
            hostname_override: lease.hostname_override.clone().unwrap_or_default(),
            expiry: lease.expiry.map(rfc3339).unwrap_or_else(go_zero_time),
            last_ack: lease.last_ack.map(rfc3339).unwrap_or_default(),
            interface: lease.interface.clone(),
        }
    }

    /// The lease, or why this entry cannot be used (the rest of the file still is).
    pub(crate) fn to_lease(&self, default_interface: &str) -> Result<Lease, String> {
        let addr: Ipv4Addr = self.addr.parse().map_err(|_| format!("addr {:?} is not an IPv4 address", self.addr))?;
        let hardware_addr = parse_mac(&self.hardware_addr)
            .ok_or_else(|| format!("hardware_addr {:?} is not a MAC", self.hardware_addr))?;
        let time = |text: &str| -> Result<Option<SystemTime>, String> {
            if text.is_empty() || text.starts_with("0001-01-01") {
                return Ok(None);
            }
            OffsetDateTime::parse(text, &Rfc3339)
                .map(|t| Some(t.into()))
                .map_err(|_| format!("{text:?} is not an RFC 3339 time"))
        };
        let label = |text: &str| crate::lan::hostname::sanitize(text);
        Ok(Lease {
            num: u32::try_from(self.num).unwrap_or(0),
            addr,
            hardware_addr,
            hostname: label(&self.hostname),
            hostname_override: label(&self.hostname_override),
            expiry: time(&self.expiry)?,
            last_ack: time(&self.last_ack)?,
            interface: if self.interface.is_empty() { default_interface.to_string() } else { self.interface.clone() },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn lease(mac: u8, addr: u8) -> Lease {
        Lease {
            num: u32::from(addr),
            addr: Ipv4Addr::new(192, 0, 2, addr),
            hardware_addr: [2, 0, 0, 0, 0, mac],
            hostname: Some(format!("host{mac}")),
            hostname_override: None,
            expiry: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)),
            last_ack: None,
            interface: "lan0".into(),
        }
    }

    #[test]
    fn an_address_has_one_owner_and_a_client_one_address() {
        let mut table = LeaseTable::default();
        table.insert(lease(1, 10));
        table.insert(lease(1, 11));
        assert_eq!(table.len(), 1);
        assert!(table.by_addr(Ipv4Addr::new(192, 0, 2, 10)).is_none());
        table.insert(lease(2, 11));
        assert_eq!(table.len(), 1, "the address moved to the second client");
        assert_eq!(table.by_addr(Ipv4Addr::new(192, 0, 2, 11)).map(|l| l.hardware_addr[5]), Some(2));
    }

    #[test]
    fn router7_records_round_trip_and_zero_expiry_means_static() {
        let json = r#"[{"num":10,"addr":"192.0.2.110","hardware_addr":"02:00:00:00:02:01","hostname":"Kitchen Tablet","hostname_override":"","expiry":"0001-01-01T00:00:00Z"},
                       {"num":11,"addr":"192.0.2.111","hardware_addr":"02:00:00:00:02:02","hostname":"x","hostname_override":"printer","expiry":"2027-01-01T10:00:00+01:00"}]"#;
        let records: Vec<LeaseRecord> = serde_json::from_str(json).expect("router7's schema");
        let leases: Vec<Lease> = records.iter().map(|r| r.to_lease("lan0").expect("valid")).collect();
        assert!(leases[0].is_static());
        assert_eq!(leases[0].hostname.as_deref(), Some("kitchen-tablet"));
        assert_eq!(leases[1].name(), Some("printer"));
        let again = LeaseRecord::from_lease(&leases[0]);
        assert_eq!(again.expiry, "0001-01-01T00:00:00Z");
        assert_eq!(again.hardware_addr, "02:00:00:00:02:01");
        let bad = LeaseRecord { addr: "192.0.2.300".into(), ..records[0].clone() };
        assert!(bad.to_lease("lan0").is_err());
    }
}
