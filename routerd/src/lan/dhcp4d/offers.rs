//! Addresses offered and not yet requested, indexed both ways: by client and by address (so checking whether
//! an address is held costs O(log n), not a scan of every offer), and in the order they were made (so when the
//! pool is full, the oldest offer yields to a new client instead of a flood of DISCOVERs starving the LAN).

use std::{
    collections::{BTreeMap, HashMap},
    net::Ipv4Addr,
    time::SystemTime,
};

use super::leases::Mac;

#[derive(Clone, Copy, Debug)]
struct Offer {
    addr: Ipv4Addr,
    until: SystemTime,
    order: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Offers {
    by_mac: HashMap<Mac, Offer>,
    by_addr: BTreeMap<Ipv4Addr, Mac>,
    by_age: BTreeMap<u64, Mac>,
    next: u64,
}

impl Offers {
    /// Reserves `addr` for `mac` until `until` (replacing what `mac` was offered before).
    pub(crate) fn insert(&mut self, mac: Mac, addr: Ipv4Addr, until: SystemTime) {
        self.remove(&mac);
        if let Some(other) = self.by_addr.get(&addr).copied() {
            self.remove(&other);
        }
        let order = self.next;
        self.next += 1;
        self.by_mac.insert(mac, Offer { addr, until, order });
        self.by_addr.insert(addr, mac);
        self.by_age.insert(order, mac);
    }

    pub(crate) fn remove(&mut self, mac: &Mac) -> Option<Ipv4Addr> {
        let offer = self.by_mac.remove(mac)?;
        self.by_addr.remove(&offer.addr);
        self.by_age.remove(&offer.order);
        Some(offer.addr)
    }

    /// What `mac` was offered, if the offer still stands at `now`.
    pub(crate) fn of(&self, mac: &Mac, now: SystemTime) -> Option<Ipv4Addr> {
        self.by_mac.get(mac).filter(|o| o.until > now).map(|o| o.addr)
    }

    /// Whether `addr` is offered to a client other than `mac` at `now`.
    pub(crate) fn held_by_other(&self, addr: Ipv4Addr, mac: &Mac, now: SystemTime) -> bool {
        self.by_addr
            .get(&addr)
            .is_some_and(|holder| holder != mac && self.by_mac.get(holder).is_some_and(|o| o.until > now))
    }

    /// Drops the offers that ran out by `now`. Every offer is held equally long, so the oldest runs out first.
    pub(crate) fn expire(&mut self, now: SystemTime) {
        while let Some((_, mac)) = self.by_age.first_key_value() {
            let mac = *mac;
            match self.by_mac.get(&mac) {
                Some(offer) if offer.until > now => break,
                _ => {
                    self.remove(&mac);
                }
            }
        }
    }

    /// Takes back the oldest offer held by another client than `mac`, and returns its address.
    pub(crate) fn yield_oldest(&mut self, mac: &Mac) -> Option<(Mac, Ipv4Addr)> {
        let holder = self.by_age.values().find(|holder| *holder != mac).copied()?;
        self.remove(&holder).map(|addr| (holder, addr))
    }

    /// The offers that still stand at `now`, by address: (client, address, until when).
    pub(crate) fn standing(&self, now: SystemTime) -> impl Iterator<Item = (Mac, Ipv4Addr, SystemTime)> + '_ {
        self.by_addr.iter().filter_map(move |(addr, mac)| {
            self.by_mac.get(mac).filter(|o| o.until > now).map(|o| (*mac, *addr, o.until))
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.by_mac.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.by_mac.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn mac(n: u8) -> Mac {
        [2, 0, 0, 0, 9, n]
    }

    #[test]
    fn offers_are_found_by_address_expire_and_yield_oldest_first() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let later = now + Duration::from_secs(60);
        let mut offers = Offers::default();
        let (a, b, c) = (Ipv4Addr::new(192, 0, 2, 10), Ipv4Addr::new(192, 0, 2, 11), Ipv4Addr::new(192, 0, 2, 12));
        offers.insert(mac(1), a, later);
        offers.insert(mac(2), b, later);
        assert!(offers.held_by_other(a, &mac(2), now) && !offers.held_by_other(a, &mac(1), now));
        assert_eq!(offers.of(&mac(2), now), Some(b));
        let standing: Vec<_> = offers.standing(now).map(|(mac, addr, _)| (mac, addr)).collect();
        assert_eq!(standing, [(mac(1), a), (mac(2), b)]);
        assert_eq!(offers.standing(later).count(), 0, "an offer lapses at its time");
        // A new offer to the same client replaces its old one.
        offers.insert(mac(2), c, later + Duration::from_secs(1));
        assert!(!offers.held_by_other(b, &mac(1), now) && offers.len() == 2);
        assert_eq!(offers.yield_oldest(&mac(3)), Some((mac(1), a)));
        assert_eq!(offers.yield_oldest(&mac(2)), None, "a client does not take from itself");
        offers.expire(later + Duration::from_secs(1));
        assert!(offers.is_empty());
    }
}
