//! Which addresses of a pool have a lease, one bit each (16 KiB for a /15), so finding a never-leased address
//! skips 64 taken ones per step instead of looking each one up in the lease table.

use std::net::Ipv4Addr;

#[derive(Clone, Debug)]
pub(crate) struct PoolMap {
    first: u32,
    size: u32,
    taken: Vec<u64>,
}

impl PoolMap {
    /// A map of `size` addresses from `first`, none taken.
    pub(crate) fn new(first: Ipv4Addr, size: u32) -> PoolMap {
        PoolMap { first: first.to_bits(), size, taken: vec![0; size.div_ceil(64) as usize] }
    }

    fn offset(&self, addr: Ipv4Addr) -> Option<u32> {
        addr.to_bits().checked_sub(self.first).filter(|offset| *offset < self.size)
    }

    /// Marks `addr` taken or free (addresses outside the pool are ignored).
    pub(crate) fn set(&mut self, addr: Ipv4Addr, taken: bool) {
        let Some(offset) = self.offset(addr) else { return };
        let (word, bit) = ((offset / 64) as usize, offset % 64);
        if taken {
            self.taken[word] |= 1 << bit;
        } else {
            self.taken[word] &= !(1 << bit);
        }
    }

    #[cfg(test)]
    pub(crate) fn is_taken(&self, addr: Ipv4Addr) -> bool {
        self.offset(addr).is_some_and(|offset| self.taken[(offset / 64) as usize] & (1 << (offset % 64)) != 0)
    }

    /// The addresses not taken, starting at offset `start` and wrapping around once.
    pub(crate) fn free_from(&self, start: u32) -> impl Iterator<Item = Ipv4Addr> + '_ {
        let start = if self.size == 0 { 0 } else { start % self.size };
        self.free_between(start, self.size)
            .chain(self.free_between(0, start))
            .map(|o| Ipv4Addr::from_bits(self.first + o))
    }

    /// Free offsets in `from..to`, a word at a time.
    fn free_between(&self, from: u32, to: u32) -> impl Iterator<Item = u32> + '_ {
        let mut next = from;
        std::iter::from_fn(move || {
            while next < to {
                let (word, bit) = ((next / 64) as usize, next % 64);
                let free = !self.taken[word] >> bit;
                if free == 0 {
                    next = (next / 64 + 1) * 64;
                    continue;
                }
                let found = next + free.trailing_zeros();
                next = found + 1;
                return (found < to).then_some(found);
            }
            None
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_addresses_are_found_past_taken_words_and_wrap_around() {
        let first = Ipv4Addr::new(198, 51, 100, 0);
        let mut map = PoolMap::new(first, 200);
        for offset in 0..200u32 {
            if offset != 3 && offset != 150 {
                map.set(Ipv4Addr::from_bits(first.to_bits() + offset), true);
            }
        }
        map.set(Ipv4Addr::new(203, 0, 113, 1), true);
        let free: Vec<_> = map.free_from(10).collect();
        assert_eq!(free, [Ipv4Addr::new(198, 51, 100, 150), Ipv4Addr::new(198, 51, 100, 3)]);
        assert!(map.is_taken(Ipv4Addr::new(198, 51, 100, 199)) && !map.is_taken(Ipv4Addr::new(198, 51, 100, 200)));
        map.set(Ipv4Addr::new(198, 51, 100, 150), true);
        map.set(Ipv4Addr::new(198, 51, 100, 3), true);
        assert_eq!(map.free_from(0).count(), 0, "bits past the pool's end never count as free");
        map.set(Ipv4Addr::new(198, 51, 100, 64), false);
        assert_eq!(map.free_from(199).collect::<Vec<_>>(), [Ipv4Addr::new(198, 51, 100, 64)]);
        assert_eq!(PoolMap::new(first, 0).free_from(5).count(), 0);
    }
}
