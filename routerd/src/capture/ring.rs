//! The capture ring: the last N configuration packets for backfill, and a broadcast of new ones to live
//! readers. A reader that falls behind loses packets (counted, never blocking the capture) instead of slowing
//! routerd down.

use std::{collections::VecDeque, sync::Arc};

use tokio::sync::broadcast;

/// Ring size when routerd.json does not say (router7's choice too).
pub const DEFAULT_CAPACITY: usize = 50_000;
/// Packets a live reader may fall behind before it starts losing them.
const LIVE_BACKLOG: usize = 4096;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Index of the interface in the capture's interface list.
    pub interface: u32,
    /// Microseconds since the Unix epoch.
    pub micros: u64,
    pub frame: Arc<[u8]>,
    pub original_length: usize,
}

pub struct Ring {
    capacity: usize,
    packets: VecDeque<Packet>,
    live: broadcast::Sender<Packet>,
    /// Packets pushed out of the ring because it was full.
    pub overwritten: u64,
}

/// A live reader: the backfill it started with, then new packets; `dropped` says how many it missed.
pub struct Reader {
    pub backfill: Vec<Packet>,
    live: broadcast::Receiver<Packet>,
    pub dropped: u64,
}

impl Reader {
    /// The next live packet; `None` when the capture stopped. Missed packets are added to `dropped`.
    pub async fn next(&mut self) -> Option<Packet> {
        loop {
            match self.live.recv().await {
                Ok(packet) => return Some(packet),
                Err(broadcast::error::RecvError::Lagged(missed)) => self.dropped += missed,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

impl Ring {
    pub fn new(capacity: usize) -> Ring {
        let (live, _) = broadcast::channel(LIVE_BACKLOG);
        Ring { capacity: capacity.max(1), packets: VecDeque::new(), live, overwritten: 0 }
    }

    pub fn len(&self) -> usize {
        self.packets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn push(&mut self, packet: Packet) {
        if self.packets.len() == self.capacity {
            self.packets.pop_front();
            self.overwritten += 1;
        }
        self.packets.push_back(packet.clone());
        // No receivers is fine: nobody is watching live.
        let _ = self.live.send(packet);
    }

    /// A reader that starts with the ring's contents (if `backfill`) and then gets every new packet.
    pub fn reader(&self, backfill: bool) -> Reader {
        Reader {
            backfill: if backfill { self.packets.iter().cloned().collect() } else { Vec::new() },
            live: self.live.subscribe(),
            dropped: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(n: u64) -> Packet {
        Packet { interface: 0, micros: n, frame: Arc::from(vec![n as u8; 60]), original_length: 60 }
    }

    #[test]
    fn the_ring_keeps_the_newest_packets() {
        let mut ring = Ring::new(3);
        for n in 0..5 {
            ring.push(packet(n));
        }
        assert_eq!(ring.len(), 3);
        assert_eq!(ring.overwritten, 2);
        let reader = ring.reader(true);
        assert_eq!(reader.backfill.iter().map(|p| p.micros).collect::<Vec<_>>(), vec![2, 3, 4]);
        assert!(ring.reader(false).backfill.is_empty());
    }

    #[tokio::test]
    async fn live_readers_get_new_packets_and_a_slow_one_counts_what_it_missed() {
        let mut ring = Ring::new(10);
        let mut fast = ring.reader(false);
        let mut slow = ring.reader(false);
        ring.push(packet(1));
        assert_eq!(fast.next().await.map(|p| p.micros), Some(1));
        // The slow reader does not read while far more than its backlog arrives; the capture never waits.
        for n in 0..(LIVE_BACKLOG as u64 + 100) {
            ring.push(packet(n));
        }
        let next = slow.next().await.expect("still live");
        assert!(slow.dropped >= 100, "dropped {}", slow.dropped);
        assert!(next.micros > 0);
        assert_eq!(ring.len(), 10);
    }
}
