//! The lease table as published to DNS, the API and metrics: shared blocks of up to 256 leases (one block per
//! /24 of a LAN), so publishing after a change copies only the blocks that changed and a pointer per block,
//! never the whole table, and a reader finds what changed between two snapshots by comparing block pointers.

use std::{
    collections::{BTreeMap, HashMap},
    net::Ipv4Addr,
    sync::Arc,
};

use super::{
    leases::{Lease, Mac},
    server::{Server, block_of},
};

/// (LAN interface, block of 256 addresses)
type BlockKey = (Arc<str>, u32);

#[derive(Clone, Debug, Default)]
pub struct LeaseSnapshot {
    blocks: Arc<Vec<(BlockKey, Arc<[Lease]>)>>,
}

impl LeaseSnapshot {
    /// A snapshot of these leases (for tests and start-up; the service keeps a [`Publisher`]).
    pub fn of(leases: Vec<Lease>) -> LeaseSnapshot {
        let mut blocks: BTreeMap<BlockKey, Vec<Lease>> = BTreeMap::new();
        for lease in leases {
            blocks.entry((Arc::from(lease.interface.as_str()), block_of(lease.addr))).or_default().push(lease);
        }
        let blocks = blocks
            .into_iter()
            .map(|(key, mut leases)| {
                leases.sort_by_key(|l| l.addr);
                (key, Arc::from(leases))
            })
            .collect();
        LeaseSnapshot { blocks: Arc::new(blocks) }
    }

    /// Every lease, by LAN and address.
    pub fn iter(&self) -> impl Iterator<Item = &Lease> {
        self.blocks.iter().flat_map(|(_, leases)| leases.iter())
    }

    pub fn len(&self) -> usize {
        self.blocks.iter().map(|(_, leases)| leases.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    pub fn by_mac(&self, mac: &Mac) -> Option<&Lease> {
        self.iter().find(|l| l.hardware_addr == *mac)
    }

    /// What changed from `before` to `self`, by client: (lease before, lease now), at least one of them set.
    /// Only blocks that are not shared between the two snapshots are looked at.
    pub fn changes_since<'a>(&'a self, before: &'a LeaseSnapshot) -> Vec<(Option<&'a Lease>, Option<&'a Lease>)> {
        let mut old: HashMap<Mac, &Lease> = HashMap::new();
        let mut new: HashMap<Mac, &Lease> = HashMap::new();
        let unshared = |from: &'a LeaseSnapshot, to: &'a LeaseSnapshot, into: &mut HashMap<Mac, &'a Lease>| {
            let other: HashMap<&BlockKey, &Arc<[Lease]>> = to.blocks.iter().map(|(k, v)| (k, v)).collect();
            for (key, leases) in from.blocks.iter() {
                if other.get(key).is_some_and(|o| Arc::ptr_eq(o, leases)) {
                    continue;
                }
                into.extend(leases.iter().map(|l| (l.hardware_addr, l)));
            }
        };
        unshared(before, self, &mut old);
        unshared(self, before, &mut new);
        let mut changes: Vec<_> = new
            .iter()
            .filter(|(mac, lease)| old.get(*mac) != Some(*lease))
            .map(|(mac, lease)| (old.get(mac).copied(), Some(*lease)))
            .collect();
        changes.extend(old.iter().filter(|(mac, _)| !new.contains_key(*mac)).map(|(_, lease)| (Some(*lease), None)));
        changes.sort_by_key(|(old, new)| new.or(*old).map(|l| (l.interface.clone(), l.addr)));
        changes
    }
}

/// The service's side: keeps the blocks, rebuilds those that changed.
#[derive(Debug, Default)]
pub(crate) struct Publisher {
    blocks: BTreeMap<BlockKey, Arc<[Lease]>>,
}

impl Publisher {
    /// Rebuilds `blocks` of `server`'s LAN from its table.
    pub(crate) fn update(&mut self, server: &Server, blocks: impl IntoIterator<Item = u32>) {
        let interface: Arc<str> = Arc::from(server.config().interface.as_str());
        for block in blocks {
            let first = Ipv4Addr::from_bits(block << 8);
            let last = Ipv4Addr::from_bits((block << 8) | 0xff);
            let leases: Vec<Lease> = server.leases().in_range(first, last).cloned().collect();
            let key = (interface.clone(), block);
            if leases.is_empty() {
                self.blocks.remove(&key);
            } else {
                self.blocks.insert(key, Arc::from(leases));
            }
        }
    }

    /// Everything in `server`'s table.
    pub(crate) fn update_all(&mut self, server: &Server) {
        let blocks: std::collections::BTreeSet<u32> = server.leases().iter().map(|l| block_of(l.addr)).collect();
        self.update(server, blocks);
    }

    pub(crate) fn snapshot(&self) -> LeaseSnapshot {
        LeaseSnapshot { blocks: Arc::new(self.blocks.iter().map(|(k, v)| (k.clone(), v.clone())).collect()) }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::lan::dhcp4d::PoolConfig;

    fn lease(mac: u8, addr: Ipv4Addr) -> Lease {
        Lease {
            num: 0,
            addr,
            hardware_addr: [2, 0, 0, 0, 7, mac],
            hostname: None,
            hostname_override: None,
            expiry: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000)),
            last_ack: None,
            interface: "lan0".into(),
        }
    }

    #[test]
    fn only_changed_blocks_are_rebuilt_and_compared() {
        let pool = PoolConfig::whole_subnet("lan0", Ipv4Addr::new(198, 18, 0, 1), 15).expect("pool");
        let mut server = Server::new(pool, []);
        let (a, b, c) = (Ipv4Addr::new(198, 18, 0, 10), Ipv4Addr::new(198, 18, 7, 10), Ipv4Addr::new(198, 19, 0, 9));
        server.put_lease(lease(1, a));
        server.put_lease(lease(2, b));
        let mut publisher = Publisher::default();
        publisher.update_all(&server);
        let before = publisher.snapshot();
        assert_eq!(before.len(), 2);
        server.take_changes();

        // Client 2 moves to another block, client 3 arrives; client 1's block is shared, not copied.
        server.put_lease(lease(2, c));
        server.put_lease(lease(3, b));
        let changes = server.take_changes();
        publisher.update(&server, changes.blocks.iter().copied());
        let after = publisher.snapshot();
        assert!(Arc::ptr_eq(&before.blocks[0].1, &after.blocks[0].1), "an unchanged block is shared");
        let found: Vec<(Option<Ipv4Addr>, Option<Ipv4Addr>)> =
            after.changes_since(&before).iter().map(|(o, n)| (o.map(|l| l.addr), n.map(|l| l.addr))).collect();
        assert_eq!(found, [(None, Some(b)), (Some(b), Some(c))]);
        server.remove_lease(&[2, 0, 0, 0, 7, 2]);
        let blocks = server.take_changes().blocks;
        publisher.update(&server, blocks);
        let removed = publisher.snapshot();
        assert_eq!(
            removed.changes_since(&after).iter().map(|(o, n)| (o.map(|l| l.addr), n.is_none())).collect::<Vec<_>>(),
            [(Some(c), true)]
        );
        assert_eq!(removed.iter().map(|l| l.addr).collect::<Vec<_>>(), [a, b]);
        assert_eq!(LeaseSnapshot::of(removed.iter().cloned().collect()).changes_since(&removed).len(), 0);
    }
}
