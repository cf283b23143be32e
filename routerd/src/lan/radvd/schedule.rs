//! What to advertise on each LAN and when, without I/O: three adverts quickly after a start or a change of
//! prefix, then every few minutes; an answer to a solicitation at once unless the LAN heard one less than
//! MIN_DELAY_BETWEEN_RAS ago (then the next round comes early instead); a replaced /64 announced with a preferred
//! lifetime of 0 for a while (RFC 9096). The service feeds it the time, the delegated prefix and solicitations,
//! and sends what it returns.

use std::{
    collections::BTreeMap,
    net::Ipv6Addr,
    time::{Duration, Instant},
};

use super::advert::{Advert, AdvertisedPrefix};
use crate::{
    lan::dns::local::LOCAL_DOMAIN,
    netconfig::{LanPrefix, router_address},
};

const INITIAL_ADVERTS: u32 = 3;
const INITIAL_INTERVAL: Duration = Duration::from_secs(3);
const INTERVAL: Duration = Duration::from_secs(200);
/// RFC 4861 MIN_DELAY_BETWEEN_RAS.
const MIN_DELAY: Duration = Duration::from_secs(3);
/// How long a replaced prefix is still announced (deprecated).
const DEPRECATED_FOR: Duration = Duration::from_secs(2 * 3600);

/// The delegated prefix's lifetimes, which its /64s are advertised with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Lifetimes {
    pub preferred: Duration,
    pub valid: Duration,
}

/// One LAN as the schedule sees it.
#[derive(Clone, Debug)]
pub(crate) struct LanSchedule {
    pub name: String,
    pub mac: Option<[u8; 6]>,
    /// The current /64 and its lifetimes.
    current: Option<AdvertisedPrefix>,
    /// Replaced /64s, announced with preferred lifetime 0 until the instant.
    deprecated: BTreeMap<Ipv6Addr, Instant>,
    last_sent: Option<Instant>,
}

impl LanSchedule {
    pub(crate) fn new(name: String, mac: Option<[u8; 6]>) -> LanSchedule {
        LanSchedule { name, mac, current: None, deprecated: BTreeMap::new(), last_sent: None }
    }

    /// The advert for this LAN now; `None` while it has no prefix, current or deprecated.
    pub(crate) fn advert(&self, now: Instant) -> Option<Advert> {
        let mut prefixes: Vec<AdvertisedPrefix> = self
            .deprecated
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(prefix, until)| AdvertisedPrefix { prefix: *prefix, valid: *until - now, preferred: Duration::ZERO })
            .collect();
        prefixes.extend(self.current.clone());
        if prefixes.is_empty() {
            return None;
        }
        let dns_servers = self.current.iter().map(|p| router_address(p.prefix)).collect();
        Some(Advert {
            router_lifetime: Duration::from_secs(1800),
            mtu: Some(1500),
            source_mac: self.mac,
            prefixes,
            dns_servers,
            search_domains: vec![LOCAL_DOMAIN.to_string()],
            dns_lifetime: INTERVAL * 3,
        })
    }

    /// Takes the /64 netconfig gave this LAN, with the lifetimes to advertise it with; returns whether it
    /// changed. A replaced /64 is kept as deprecated.
    fn take_prefix(&mut self, subnet: Option<Ipv6Addr>, lifetimes: Option<Lifetimes>, now: Instant) -> bool {
        let wanted = subnet.zip(lifetimes).map(|(subnet, l)| AdvertisedPrefix {
            prefix: subnet,
            valid: l.valid,
            preferred: l.preferred.min(l.valid),
        });
        let changed = self.current.as_ref().map(|c| c.prefix) != wanted.as_ref().map(|w| w.prefix);
        if changed {
            if let Some(old) = self.current.take() {
                tracing::info!("{}: {}/64 is replaced; announcing it as deprecated", self.name, old.prefix);
                self.deprecated.insert(old.prefix, now + DEPRECATED_FOR.min(old.valid));
            }
            if let Some(new) = &wanted {
                self.deprecated.remove(&new.prefix);
                tracing::info!("{}: advertising {}/64", self.name, new.prefix);
            }
        }
        self.current = wanted;
        self.deprecated.retain(|_, until| *until > now);
        changed
    }
}

/// Every LAN's schedule, and when the next round of multicast adverts is due.
#[derive(Debug)]
pub(crate) struct Schedule {
    pub lans: Vec<LanSchedule>,
    fast_left: u32,
    next: Instant,
}

impl Schedule {
    /// A schedule starting now: the first round is due at once.
    pub(crate) fn new(lans: Vec<LanSchedule>, now: Instant) -> Schedule {
        Schedule { lans, fast_left: INITIAL_ADVERTS, next: now }
    }

    pub(crate) fn next_wakeup(&self) -> Instant {
        self.next
    }

    /// The LANs' /64s as netconfig applied them, and the delegated prefix's lifetimes (none without a lease):
    /// when any LAN's /64 changed, three quick rounds start again now.
    pub(crate) fn set_prefixes(&mut self, assigned: &[LanPrefix], lifetimes: Option<Lifetimes>, now: Instant) -> bool {
        let mut changed = false;
        for lan in &mut self.lans {
            let subnet = assigned.iter().find(|p| p.lan == lan.name).map(|p| p.subnet);
            changed |= lan.take_prefix(subnet, lifetimes, now);
        }
        if changed {
            self.fast_left = INITIAL_ADVERTS;
            self.next = now;
        }
        changed
    }

    /// A round is due: the adverts to multicast now (by LAN position); the next round is scheduled.
    pub(crate) fn on_timeout(&mut self, now: Instant) -> Vec<(usize, Advert)> {
        if now < self.next {
            return Vec::new();
        }
        let adverts = self.lans.iter().enumerate().filter_map(|(i, lan)| Some((i, lan.advert(now)?))).collect();
        self.next = if self.fast_left > 1 {
            self.fast_left -= 1;
            now + INITIAL_INTERVAL
        } else {
            self.fast_left = 0;
            now + self.periodic_interval()
        };
        adverts
    }

    /// A router solicitation on LAN `position`: the advert to send now, or `None` when that LAN heard one less
    /// than MIN_DELAY_BETWEEN_RAS ago (the next round then comes no later than that delay after it).
    pub(crate) fn solicited(&mut self, position: usize, now: Instant) -> Option<Advert> {
        let lan = self.lans.get(position)?;
        match lan.last_sent {
            Some(last) if now.saturating_duration_since(last) < MIN_DELAY => {
                self.next = self.next.min(last + MIN_DELAY);
                None
            }
            _ => lan.advert(now),
        }
    }

    /// An advert went out on LAN `position` (one that failed to send does not count).
    pub(crate) fn sent(&mut self, position: usize, now: Instant) {
        if let Some(lan) = self.lans.get_mut(position) {
            lan.last_sent = Some(now);
        }
    }

    /// Every few minutes, but often enough that devices hear of a prefix again well before its preferred
    /// lifetime runs out (an ISP with short DHCPv6 lifetimes).
    fn periodic_interval(&self) -> Duration {
        let shortest = self.lans.iter().filter_map(|l| l.current.as_ref()).map(|p| p.preferred).min();
        match shortest {
            Some(preferred) => INTERVAL.min((preferred / 3).max(INITIAL_INTERVAL)),
            None => INTERVAL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// lan0 and lan1 with subnets 0 and 1 of the /56 at `network`, as netconfig assigns them.
    fn assigned(network: &str) -> Vec<LanPrefix> {
        let prefix = crate::netconfig::Prefix { network: network.parse().expect("literal"), length: 56 };
        (0..2)
            .map(|number| {
                let subnet = crate::netconfig::lan_subnet(prefix, number).expect("a /56 has 256 subnets");
                LanPrefix { lan: format!("lan{number}"), subnet, router: router_address(subnet) }
            })
            .collect()
    }

    fn lifetimes(preferred: u64, valid: u64) -> Option<Lifetimes> {
        Some(Lifetimes { preferred: Duration::from_secs(preferred), valid: Duration::from_secs(valid) })
    }

    /// Sets the prefixes of the /56 at `network` with these lifetimes.
    fn delegate(schedule: &mut Schedule, network: &str, preferred: u64, valid: u64, now: Instant) -> bool {
        schedule.set_prefixes(&assigned(network), lifetimes(preferred, valid), now)
    }

    fn two_lans(now: Instant) -> Schedule {
        Schedule::new(vec![LanSchedule::new("lan0".into(), None), LanSchedule::new("lan1".into(), None)], now)
    }

    /// The times of the rounds that send something, from `start` until `until`, on a virtual clock.
    fn rounds(schedule: &mut Schedule, start: Instant, until: Duration) -> Vec<u64> {
        let mut at = Vec::new();
        while schedule.next_wakeup() <= start + until {
            let now = schedule.next_wakeup();
            let adverts = schedule.on_timeout(now);
            for (position, _) in &adverts {
                schedule.sent(*position, now);
            }
            if !adverts.is_empty() {
                at.push((now - start).as_secs());
            }
        }
        at
    }

    #[test]
    fn three_quick_rounds_after_a_prefix_arrives_then_every_200_seconds() {
        let start = Instant::now();
        let mut schedule = two_lans(start);
        assert!(schedule.on_timeout(start).is_empty(), "no prefix: nothing to advertise");
        assert!(delegate(&mut schedule, "2001:db8:100::", 3600, 7200, start + Duration::from_secs(10)));
        let times = rounds(&mut schedule, start, Duration::from_secs(700));
        assert_eq!(times, [10, 13, 16, 216, 416, 616]);
        let advert = schedule.lans[1].advert(start).expect("an advert");
        assert_eq!(advert.prefixes.len(), 1);
        assert_eq!(advert.prefixes[0].prefix, "2001:db8:100:1::".parse::<Ipv6Addr>().expect("literal"));
        assert_eq!(advert.dns_servers, ["2001:db8:100:1::1".parse::<Ipv6Addr>().expect("literal")]);
        assert_eq!(advert.search_domains, [LOCAL_DOMAIN]);
    }

    #[test]
    fn short_lifetimes_bring_the_rounds_closer() {
        let start = Instant::now();
        let mut schedule = two_lans(start);
        delegate(&mut schedule, "2001:db8:100::", 90, 120, start);
        assert_eq!(rounds(&mut schedule, start, Duration::from_secs(100)), [0, 3, 6, 36, 66, 96]);
    }

    #[test]
    fn a_new_prefix_deprecates_the_old_one_and_starts_quick_rounds_again() {
        let start = Instant::now();
        let mut schedule = two_lans(start);
        delegate(&mut schedule, "2001:db8:100::", 3600, 9000, start);
        rounds(&mut schedule, start, Duration::from_secs(500));
        let change = start + Duration::from_secs(1000);
        assert!(delegate(&mut schedule, "2001:db8:200::", 3600, 7200, change));
        assert!(!delegate(&mut schedule, "2001:db8:200::", 1800, 3600, change), "same /64s: no change");
        assert_eq!(schedule.next_wakeup(), change, "a round at once");
        let advert = schedule.lans[0].advert(change).expect("an advert");
        let old: Ipv6Addr = "2001:db8:100::".parse().expect("literal");
        let replaced = advert.prefixes.iter().find(|p| p.prefix == old).expect("the old /64, deprecated");
        assert_eq!(replaced.preferred, Duration::ZERO);
        assert_eq!(replaced.valid, DEPRECATED_FOR, "at most two hours");
        assert!(advert.prefixes.iter().any(|p| p.prefix != old && p.preferred > Duration::ZERO));
        assert_eq!(rounds(&mut schedule, change, Duration::from_secs(7)), [0, 3, 6]);
        let later = change + DEPRECATED_FOR + Duration::from_secs(1);
        let advert = schedule.lans[0].advert(later).expect("an advert");
        assert!(advert.prefixes.iter().all(|p| p.prefix != old), "gone once its time is up");
        // The delegated prefix goes away: its /64 is deprecated too, and nothing current remains.
        assert!(schedule.set_prefixes(&[], None, later));
        let advert = schedule.lans[0].advert(later).expect("the deprecated /64 still");
        assert!(advert.prefixes.iter().all(|p| p.preferred == Duration::ZERO) && advert.dns_servers.is_empty());
    }

    #[test]
    fn a_solicitation_is_answered_at_once_unless_the_lan_heard_an_advert_just_now() {
        let start = Instant::now();
        let mut schedule = two_lans(start);
        assert!(schedule.solicited(0, start).is_none(), "nothing to advertise yet");
        delegate(&mut schedule, "2001:db8:100::", 3600, 7200, start);
        rounds(&mut schedule, start, Duration::from_secs(10));
        let quiet = start + Duration::from_secs(100);
        assert!(schedule.solicited(0, quiet).is_some(), "long after the last round");
        schedule.sent(0, quiet);
        let soon = quiet + Duration::from_secs(1);
        assert!(schedule.solicited(0, soon).is_none(), "one second after the last advert");
        assert_eq!(schedule.next_wakeup(), quiet + MIN_DELAY, "the next round comes early instead");
        assert!(schedule.solicited(1, soon).is_some(), "the other LAN heard nothing since the last round");
        assert!(schedule.solicited(7, soon).is_none(), "no such LAN");
    }
}
