//! Randomness for transaction IDs and retransmission jitter, injectable so tests are deterministic.

pub(crate) trait Entropy: Send {
    fn next_u32(&mut self) -> u32;
}

/// The operating system's random number generator.
pub(crate) struct SystemEntropy(ring::rand::SystemRandom);

impl Default for SystemEntropy {
    fn default() -> Self {
        SystemEntropy(ring::rand::SystemRandom::new())
    }
}

impl Entropy for SystemEntropy {
    fn next_u32(&mut self) -> u32 {
        let mut bytes = [0u8; 4];
        // The system RNG failing is not something a DHCP client can fix; a fixed value still works (the
        // transaction ID only has to differ from other clients', which the hardware address already ensures).
        let _ = ring::rand::SecureRandom::fill(&self.0, &mut bytes);
        u32::from_ne_bytes(bytes)
    }
}

/// A fixed sequence, repeated: for tests and replays of captures.
pub(crate) struct Sequence {
    values: Vec<u32>,
    next: usize,
}

impl Sequence {
    pub(crate) fn new(values: Vec<u32>) -> Sequence {
        Sequence { values, next: 0 }
    }
}

impl Entropy for Sequence {
    fn next_u32(&mut self) -> u32 {
        let value = self.values.get(self.next % self.values.len().max(1)).copied().unwrap_or(0);
        self.next += 1;
        value
    }
}
