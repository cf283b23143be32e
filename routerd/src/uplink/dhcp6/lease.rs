//! A DHCPv6 lease: an address (IA_NA) and delegated prefixes (IA_PD), checked before anything is applied.

use std::{net::Ipv6Addr, time::Duration};

use super::wire::{STATUS_SUCCESS, ServerMessage, Status};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeasedAddress {
    pub address: Ipv6Addr,
    pub preferred: Duration,
    pub valid: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DelegatedPrefix {
    pub prefix: Ipv6Addr,
    pub length: u8,
    pub preferred: Duration,
    pub valid: Duration,
}

impl DelegatedPrefix {
    pub fn cidr(&self) -> String {
        self.network().to_string()
    }

    /// The prefix as netconfig takes it (without its lifetimes).
    pub fn network(&self) -> crate::netconfig::Prefix {
        crate::netconfig::Prefix { network: self.prefix, length: self.length }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub address: Option<LeasedAddress>,
    pub prefixes: Vec<DelegatedPrefix>,
    pub dns: Vec<Ipv6Addr>,
    /// NTP servers (options 56 and 31).
    pub ntp: Vec<Ipv6Addr>,
    pub server_id: Vec<u8>,
    pub t1: Duration,
    pub t2: Duration,
    /// Until the last binding's valid lifetime ends.
    pub valid: Duration,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    #[error("no server identifier")]
    NoServerId,
    #[error("for another client (client identifier does not match our DUID)")]
    OtherClient,
    #[error("the server refused: {0}")]
    Refused(String),
    #[error("no usable address or prefix{0}")]
    Empty(String),
}

/// The shortest T1 the client accepts: a server that says 0 (or a preferred lifetime of 0) must not make it renew
/// in a tight loop.
const MIN_T1: Duration = Duration::from_secs(5);

impl Lease {
    /// The lease a Reply (or Advertise) offers for our IAs. Addresses and prefixes that are not usable global
    /// unicast, have no valid lifetime, a preferred lifetime above the valid one, or (prefixes) are longer than
    /// /64 are left out; IAs with T1 > T2 are discarded (RFC 8415 §21.4). If nothing is left, it is an error that
    /// says why (the servers' status codes).
    pub fn from_message(
        message: &ServerMessage,
        duid: &[u8],
        ia_na: Option<u32>,
        ia_pd: Option<u32>,
    ) -> Result<Lease, LeaseError> {
        let server_id = message.server_id.clone().ok_or(LeaseError::NoServerId)?;
        if message.client_id.as_deref() != Some(duid) {
            return Err(LeaseError::OtherClient);
        }
        if let Some(status) = message.status.as_ref().filter(|s| s.code != STATUS_SUCCESS) {
            return Err(LeaseError::Refused(describe(status)));
        }
        let mut found = Found::default();
        let mut address = None;
        for ia in message.ia_na.iter().filter(|ia| Some(ia.iaid) == ia_na) {
            if !found.usable_ia("IA_NA", ia.status.as_ref(), ia.t1, ia.t2) {
                continue;
            }
            let usable =
                ia.addresses.iter().find(|a| is_global_unicast(a.address) && a.valid > 0 && a.preferred <= a.valid);
            if let Some(a) = usable {
                address =
                    Some(LeasedAddress { address: a.address, preferred: secs(a.preferred), valid: secs(a.valid) });
                found.binding(ia.t1, ia.t2, a.preferred, a.valid);
            }
        }

        let mut prefixes = Vec::new();
        for ia in message.ia_pd.iter().filter(|ia| Some(ia.iaid) == ia_pd) {
            if !found.usable_ia("IA_PD", ia.status.as_ref(), ia.t1, ia.t2) {
                continue;
            }
            for p in &ia.prefixes {
                if !(1..=64).contains(&p.length) {
                    found
                        .notes
                        .push(format!("prefix {}/{} is longer than /64 (no LAN could use it)", p.prefix, p.length));
                    continue;
                }
                let prefix = mask(p.prefix, p.length);
                if !is_global_unicast(prefix) || p.valid == 0 || p.preferred > p.valid {
                    found.notes.push(format!("prefix {}/{} is not usable", p.prefix, p.length));
                    continue;
                }
                prefixes.push(DelegatedPrefix {
                    prefix,
                    length: p.length,
                    preferred: secs(p.preferred),
                    valid: secs(p.valid),
                });
                found.binding(ia.t1, ia.t2, p.preferred, p.valid);
            }
        }

        if address.is_none() && prefixes.is_empty() {
            let why = if found.notes.is_empty() { String::new() } else { format!(": {}", found.notes.join("; ")) };
            return Err(LeaseError::Empty(why));
        }
        let (t1, t2, valid) = found.timers();
        let ntp = message.ntp_servers.iter().copied().filter(|a| is_global_unicast(*a)).collect();
        Ok(Lease { address, prefixes, dns: message.dns_servers.clone(), ntp, server_id, t1, t2, valid })
    }

    /// Whether applying `other` would configure the system differently (lifetimes and timers do not count).
    pub fn same_configuration(&self, other: &Lease) -> bool {
        let address = |l: &Lease| l.address.as_ref().map(|a| a.address);
        let prefixes = |l: &Lease| l.prefixes.iter().map(|p| (p.prefix, p.length)).collect::<Vec<_>>();
        address(self) == address(other) && prefixes(self) == prefixes(other) && self.dns == other.dns
    }
}

fn describe(status: &Status) -> String {
    if status.message.is_empty() {
        status.name().to_string()
    } else {
        format!("{} ({})", status.name(), status.message)
    }
}

fn secs(seconds: u32) -> Duration {
    Duration::from_secs(u64::from(seconds))
}

/// Global unicast: not unspecified, loopback, multicast, link-local or IPv4-mapped.
pub(crate) fn is_global_unicast(address: Ipv6Addr) -> bool {
    !(address.is_unspecified()
        || address.is_loopback()
        || address.is_multicast()
        || address.is_unicast_link_local()
        || address.to_ipv4_mapped().is_some())
}

/// The prefix with its host bits cleared.
pub(crate) fn mask(address: Ipv6Addr, length: u8) -> Ipv6Addr {
    let bits = u128::from(address);
    let mask = u128::MAX.checked_shl(128 - u32::from(length.min(128))).unwrap_or(0);
    Ipv6Addr::from(bits & mask)
}

/// What a server message's IAs gave while it is read: why an IA or a binding was left out, and each usable
/// binding's timers (T1, T2, preferred and valid lifetime, in seconds as sent).
#[derive(Default)]
struct Found {
    notes: Vec<String>,
    bindings: Vec<(u32, u32, u32, u32)>,
}

impl Found {
    /// Whether an IA can be used: a success status (or none), and T1 not after T2.
    fn usable_ia(&mut self, kind: &str, status: Option<&Status>, t1: u32, t2: u32) -> bool {
        if let Some(status) = status.filter(|s| s.code != STATUS_SUCCESS) {
            self.notes.push(format!("{kind}: {}", describe(status)));
            return false;
        }
        if t2 != 0 && t1 > t2 {
            self.notes.push(format!("{kind}: T1 {t1} > T2 {t2}"));
            return false;
        }
        true
    }

    fn binding(&mut self, t1: u32, t2: u32, preferred: u32, valid: u32) {
        self.bindings.push((t1, t2, preferred, valid));
    }

    /// The lease's T1, T2 and lifetime: the earliest renewal of any binding, the longest lifetime. T1/T2 of 0
    /// leave the choice to the client: 0.5 and 0.8 of the preferred lifetime (RFC 8415 §21.4).
    fn timers(&self) -> (Duration, Duration, Duration) {
        let t1 = self
            .bindings
            .iter()
            .map(|&(t1, _, preferred, _)| if t1 == 0 { secs(preferred) / 2 } else { secs(t1) })
            .min();
        let t2 = self
            .bindings
            .iter()
            .map(|&(_, t2, preferred, _)| if t2 == 0 { secs(preferred).mul_f64(0.8) } else { secs(t2) })
            .min();
        let t1 = t1.unwrap_or_default().max(MIN_T1);
        let t2 = t2.unwrap_or_default().max(t1);
        let valid = self.bindings.iter().map(|&(_, _, _, valid)| secs(valid)).max().unwrap_or_default().max(t2);
        (t1, t2, valid)
    }
}
