//! The capture ring: the last N configuration packets for backfill, and a broadcast of new ones to live
//! readers. A reader that falls behind loses packets (counted, never blocking the capture) instead of slowing
//! routerd down.

use std::{
    collections::VecDeque,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::sync::mpsc;

/// Ring size when routerd.json does not say (router7's choice too).
pub(crate) const DEFAULT_CAPACITY: usize = 50_000;
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

/// The ring's side of a live reader: where new packets go, and what it lost.
struct LiveReader {
    packets: mpsc::Sender<Packet>,
    dropped: Arc<AtomicU64>,
}

pub struct Ring {
    capacity: usize,
    packets: VecDeque<Packet>,
    readers: Vec<LiveReader>,
    /// Packets pushed out of the ring because it was full.
    pub overwritten: u64,
    /// Packets live readers lost because they fell behind, over all readers so far.
    pub reader_drops: u64,
}

/// A live reader: the backfill it started with, then new packets; [`Reader::dropped`] says how many it missed.
pub struct Reader {
    pub backfill: Vec<Packet>,
    live: mpsc::Receiver<Packet>,
    dropped: Arc<AtomicU64>,
}

impl Reader {
    /// The next live packet; `None` when the capture stopped.
    pub async fn next(&mut self) -> Option<Packet> {
        self.live.recv().await
    }

    /// Packets this reader missed because its backlog was full: counted as they happen, even while the reader
    /// is stuck.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Ring {
    pub fn new(capacity: usize) -> Ring {
        Ring {
            capacity: capacity.max(1),
            packets: VecDeque::new(),
            readers: Vec::new(),
            overwritten: 0,
            reader_drops: 0,
        }
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

    /// Keeps the packet and hands it to every live reader that has room; never waits for one.
    pub fn push(&mut self, packet: Packet) {
        if self.packets.len() == self.capacity {
            self.packets.pop_front();
            self.overwritten += 1;
        }
        let mut lost = 0;
        self.readers.retain(|reader| match reader.packets.try_send(packet.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                reader.dropped.fetch_add(1, Ordering::Relaxed);
                lost += 1;
                true
            }
            // The reader went away.
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        self.reader_drops += lost;
        self.packets.push_back(packet);
    }

    /// Whether a live reader is connected (readers that went away are forgotten here).
    pub fn has_live_readers(&mut self) -> bool {
        self.readers.retain(|reader| !reader.packets.is_closed());
        !self.readers.is_empty()
    }

    /// A reader that starts with the ring's contents (if `backfill`) and then gets every new packet.
    pub fn reader(&mut self, backfill: bool) -> Reader {
        let (sender, receiver) = mpsc::channel(LIVE_BACKLOG);
        let dropped = Arc::new(AtomicU64::new(0));
        self.readers.push(LiveReader { packets: sender, dropped: dropped.clone() });
        Reader {
            backfill: if backfill { self.packets.iter().cloned().collect() } else { Vec::new() },
            live: receiver,
            dropped,
        }
    }

    /// Live readers connected now.
    pub fn readers(&self) -> usize {
        self.readers.len()
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
        // The slow reader does not read while far more than its backlog arrives; the capture never waits, and
        // the loss is counted while the reader is still stuck.
        for n in 0..(LIVE_BACKLOG as u64 + 100) {
            ring.push(packet(n));
        }
        assert_eq!(slow.dropped(), 101, "the backlog holds packet 1 and the first {LIVE_BACKLOG} - 1 of the rest");
        assert_eq!(ring.reader_drops, 101 + fast.dropped());
        assert_eq!(slow.next().await.map(|p| p.micros), Some(1), "what fitted is delivered in order");
        assert_eq!(ring.len(), 10);
        // A reader that goes away stops costing anything.
        drop(slow);
        drop(fast);
        ring.push(packet(7));
        assert_eq!(ring.readers(), 0);
    }
}
