//! Answers from upstream, kept for their TTL (negative answers for the SOA's minimum, RFC 2308), handed out
//! with the TTLs counted down.
//!
//! An entry is the answer's wire form and where its TTLs are in it: a hit is one copy with a few bytes patched
//! (ID, question, TTLs), and an entry costs about its wire size, not a decoded message's many allocations.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use hickory_proto::{
    op::{Message, ResponseCode},
    rr::{RData, RecordType},
};

/// Cached answers never outlive a day, and negative ones without an SOA a minute.
const MAX_TTL: Duration = Duration::from_secs(86_400);
const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(60);
/// Answers larger than this (on the wire) are passed on but not kept: a client asking for huge records cannot
/// fill the cache with a few of them.
pub(crate) const MAX_ENTRY_BYTES: usize = 4096;
/// What an entry costs beyond its wire size (its key, the table's slot, the allocations' bookkeeping), roughly.
const ENTRY_OVERHEAD: usize = 256;
/// The cache's size when routerd.json does not say (`dns_cache_bytes`).
pub(crate) const DEFAULT_BYTES: usize = 8 << 20;

struct Entry {
    /// The response as the upstream sent it (after rebinding protection), its TTLs as of `stored`.
    wire: Box<[u8]>,
    /// Where the TTLs of its records are (every record but EDNS's OPT, whose TTL field holds flags).
    ttls: Box<[u16]>,
    stored: Instant,
    ttl: Duration,
    /// What the entry counts against the cache's size.
    cost: usize,
}

pub(crate) struct Cache {
    /// By [`key`]: a lookup on the fast path borrows the bytes it built in a reused buffer, no allocation.
    entries: HashMap<Box<[u8]>, Entry>,
    /// The most the entries may cost together, in bytes.
    max_bytes: usize,
    bytes: usize,
}

/// The key of (name, type) in `out`: the lower-case name without the trailing dot, then the type's two bytes.
pub(crate) fn key(name: &str, record_type: RecordType, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&u16::from(record_type).to_be_bytes());
}

impl Cache {
    pub(crate) fn new(max_bytes: usize) -> Cache {
        Cache { entries: HashMap::new(), max_bytes, bytes: 0 }
    }

    #[cfg(test)]
    /// What the entries cost now (their wire size plus a fixed overhead each).
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The cached response for (name, type) with TTLs reduced by its age, for a request with `id`.
    pub(crate) fn get(&self, name: &str, record_type: RecordType, id: u16, now: Instant) -> Option<Message> {
        let mut lookup = Vec::new();
        key(name, record_type, &mut lookup);
        let mut bytes = Vec::new();
        if !self.entries.get(lookup.as_slice())?.counted_down(now, &mut bytes) {
            return None;
        }
        bytes[..2].copy_from_slice(&id.to_be_bytes());
        Message::from_vec(&bytes).ok()
    }

    /// Like [`Cache::get`], by [`key`] and as bytes: the wire form of the answer to `request` (whose first
    /// `question_end` bytes are its header and question) in `out`. False if there is none.
    pub(crate) fn get_encoded(
        &self,
        key: &[u8],
        request: &[u8],
        question_end: usize,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> bool {
        let Some(entry) = self.entries.get(key) else { return false };
        if entry.wire.len() < question_end || request.len() < question_end || !entry.counted_down(now, out) {
            return false;
        }
        // The ID, and the question exactly as asked (its letter case may differ: DNS 0x20), which has the same
        // length as the cached one. The RD flag is echoed.
        out[..2].copy_from_slice(&request[..2]);
        out[2] = (out[2] & !0x01) | (request[2] & 0x01);
        out[12..question_end].copy_from_slice(&request[12..question_end]);
        true
    }

    /// Stores a NOERROR or NXDOMAIN response; others (SERVFAIL, REFUSED) are not cached.
    pub(crate) fn put(&mut self, name: &str, record_type: RecordType, response: &Message, now: Instant) {
        let ttl = match response.metadata.response_code {
            ResponseCode::NoError if !response.answers.is_empty() => {
                response.answers.iter().map(|r| r.ttl).min().map(|t| Duration::from_secs(u64::from(t)))
            }
            ResponseCode::NoError | ResponseCode::NXDomain => Some(negative_ttl(response)),
            _ => None,
        };
        let Some(ttl) = ttl.map(|t| t.min(MAX_TTL)).filter(|t| !t.is_zero()) else { return };
        let Some(wire) = response.to_vec().ok().filter(|wire| wire.len() <= MAX_ENTRY_BYTES) else {
            return;
        };
        let Some(ttls) = ttl_offsets(&wire) else { return };
        let cost = wire.len() + name.len() + ENTRY_OVERHEAD;
        let mut entry_key = Vec::with_capacity(name.len() + 2);
        key(name, record_type, &mut entry_key);
        let entry_key: Box<[u8]> = entry_key.into();
        if let Some(old) = self.entries.remove(&entry_key) {
            self.bytes -= old.cost;
        }
        if self.bytes + cost > self.max_bytes {
            // Full: make room for a tenth of the cache at once, so that the walk below is paid once per tenth,
            // not once per answer (when entries expire about as fast as new ones come, freeing only the expired
            // ones made every answer walk the whole cache: 143 µs per answer at 26,000 entries).
            let target = self.max_bytes.saturating_sub(self.max_bytes / 10).saturating_sub(cost);
            let mut freed = 0;
            self.entries.retain(|_, e| {
                let live = now.saturating_duration_since(e.stored) < e.ttl;
                if !live {
                    freed += e.cost;
                }
                live
            });
            self.bytes -= freed;
            if self.bytes > target {
                // Still full of live entries: the oldest go, rather than the cache growing without bound. Ages
                // and sizes only (no copy of each key), then one pass dropping everything stored up to the cut.
                let mut ages: Vec<(Instant, usize)> = self.entries.values().map(|e| (e.stored, e.cost)).collect();
                ages.sort_unstable_by_key(|(stored, _)| *stored);
                let mut excess = self.bytes - target;
                let mut cut = None;
                for (stored, cost) in ages {
                    cut = Some(stored);
                    if excess <= cost {
                        break;
                    }
                    excess -= cost;
                }
                let mut freed = 0;
                self.entries.retain(|_, e| {
                    let keep = cut.is_none_or(|cut| e.stored > cut);
                    if !keep {
                        freed += e.cost;
                    }
                    keep
                });
                self.bytes -= freed;
            }
        }
        self.bytes += cost;
        let entry = Entry { wire: wire.into(), ttls: ttls.into(), stored: now, ttl, cost };
        self.entries.insert(entry_key, entry);
    }
}

impl Entry {
    /// A copy of the answer in `out` with its TTLs counted down to `now`; false if it is no longer live.
    fn counted_down(&self, now: Instant, out: &mut Vec<u8>) -> bool {
        let age = now.saturating_duration_since(self.stored);
        if age >= self.ttl {
            return false;
        }
        out.clear();
        out.extend_from_slice(&self.wire);
        let elapsed = u32::try_from(age.as_secs()).unwrap_or(u32::MAX);
        if elapsed > 0 {
            for &at in self.ttls.iter() {
                let Some(field) = out.get_mut(usize::from(at)..usize::from(at) + 4) else { return false };
                let ttl = u32::from_be_bytes([field[0], field[1], field[2], field[3]]).saturating_sub(elapsed);
                field.copy_from_slice(&ttl.to_be_bytes());
            }
        }
        true
    }
}

/// The offsets of the TTL fields of every record of a message on the wire but OPT's, or `None` if it does not
/// parse (such an answer is not cached).
fn ttl_offsets(wire: &[u8]) -> Option<Vec<u16>> {
    let count =
        |at: usize| -> Option<usize> { Some(usize::from(u16::from_be_bytes([*wire.get(at)?, *wire.get(at + 1)?]))) };
    let (questions, records) = (count(4)?, count(6)? + count(8)? + count(10)?);
    let mut at = 12;
    for _ in 0..questions {
        at = skip_name(wire, at)? + 4;
    }
    let mut offsets = Vec::with_capacity(records);
    for _ in 0..records {
        at = skip_name(wire, at)?;
        let record_type = count(at)?;
        let data_length = count(at + 8)?;
        if record_type != 41 {
            offsets.push(u16::try_from(at + 4).ok()?);
        }
        at += 10 + data_length;
    }
    (at <= wire.len()).then_some(offsets)
}

/// The offset just past the (possibly compressed) name at `at`.
fn skip_name(wire: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let length = *wire.get(at)?;
        match length & 0xc0 {
            0 if length == 0 => return Some(at + 1),
            0 => at += 1 + usize::from(length),
            0xc0 => return wire.get(at + 1).map(|_| at + 2),
            _ => return None,
        }
    }
}

/// RFC 2308: the SOA's TTL capped by its MINIMUM field.
fn negative_ttl(response: &Message) -> Duration {
    response
        .authorities
        .iter()
        .find_map(|record| match &record.data {
            RData::SOA(soa) => Some(Duration::from_secs(u64::from(record.ttl.min(soa.minimum)))),
            _ => None,
        })
        .unwrap_or(DEFAULT_NEGATIVE_TTL)
}

#[cfg(test)]
mod tests {
    use std::{net::Ipv4Addr, str::FromStr};

    use hickory_proto::{
        op::OpCode,
        rr::{Name, Record, rdata::A},
    };

    use super::*;

    fn answer(ttl: u32) -> Message {
        let mut message = Message::response(1, OpCode::Query);
        message.add_answer(Record::from_rdata(
            Name::from_str("example.com.").expect("name"),
            ttl,
            RData::A(A(Ipv4Addr::new(203, 0, 113, 80))),
        ));
        message
    }

    #[test]
    fn answers_live_for_their_ttl_counting_down() {
        let mut cache = Cache::new(DEFAULT_BYTES);
        let t0 = Instant::now();
        cache.put("example.com", RecordType::A, &answer(300), t0);
        let hit = cache.get("example.com", RecordType::A, 42, t0 + Duration::from_secs(100)).expect("cached");
        assert_eq!(hit.metadata.id, 42);
        assert_eq!(hit.answers[0].ttl, 200);
        assert!(cache.get("example.com", RecordType::A, 1, t0 + Duration::from_secs(300)).is_none());
        assert!(cache.get("example.com", RecordType::AAAA, 1, t0).is_none());
    }

    #[test]
    fn the_wire_form_counts_down_every_ttl_but_edns_flags() {
        let mut response = answer(300);
        response
            .add_query(hickory_proto::op::Query::query(Name::from_str("example.com.").expect("name"), RecordType::A));
        let soa = hickory_proto::rr::rdata::SOA::new(
            Name::from_str("ns.example.com.").expect("name"),
            Name::from_str("admin.example.com.").expect("name"),
            1,
            3600,
            600,
            86400,
            60,
        );
        response.add_authority(Record::from_rdata(Name::from_str("example.com.").expect("name"), 120, RData::SOA(soa)));
        let mut edns = hickory_proto::op::Edns::new();
        edns.set_dnssec_ok(true);
        response.set_edns(edns);
        let mut cache = Cache::new(DEFAULT_BYTES);
        let t0 = Instant::now();
        cache.put("example.com", RecordType::A, &response, t0);
        let request = response.to_vec().expect("encodes");
        let end = 12 + "example.com".len() + 2 + 4;
        let (mut lookup, mut later) = (Vec::new(), Vec::new());
        key("example.com", RecordType::A, &mut lookup);
        assert!(cache.get_encoded(&lookup, &request, end, t0 + Duration::from_secs(100), &mut later), "a hit");
        let later = Message::from_vec(&later).expect("decodes");
        assert_eq!((later.answers[0].ttl, later.authorities[0].ttl), (200, 20));
        assert!(later.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok), "OPT's flags are not a TTL");
        assert_eq!(ttl_offsets(&[0; 11]), None);
        let mut truncated = request.clone();
        truncated.truncate(request.len() - 3);
        assert_eq!(ttl_offsets(&truncated), None, "a record running past the end");
    }

    #[test]
    fn failures_are_not_cached_and_the_size_is_bounded() {
        let mut cache = Cache::new(10 * 400);
        let t0 = Instant::now();
        let mut failure = answer(300);
        failure.metadata.response_code = ResponseCode::ServFail;
        cache.put("example.com", RecordType::A, &failure, t0);
        assert!(cache.is_empty());
        for n in 0..50 {
            cache.put(&format!("{n}.example.com"), RecordType::A, &answer(300), t0 + Duration::from_millis(n));
        }
        assert!(cache.bytes() <= 10 * 400, "{} entries, {} bytes", cache.len(), cache.bytes());
        let mut nxdomain = Message::response(1, OpCode::Query);
        nxdomain.metadata.response_code = ResponseCode::NXDomain;
        cache.put("nowhere.example", RecordType::A, &nxdomain, t0);
        assert!(cache.get("nowhere.example", RecordType::A, 1, t0 + Duration::from_secs(59)).is_some());
    }

    #[test]
    fn a_full_cache_makes_room_for_a_tenth_at_once() {
        let max = 100 * 400;
        let mut cache = Cache::new(max);
        let t0 = Instant::now();
        let mut n = 0;
        while cache.bytes() + 400 < max {
            cache.put(&format!("{n}.example.com"), RecordType::A, &answer(300), t0 + Duration::from_millis(n));
            n += 1;
        }
        // Only the first entry has expired: dropping just that one would leave the cache full again at once, and
        // every next answer would walk all the entries.
        let now = t0 + Duration::from_secs(300) + Duration::from_micros(500);
        cache.put("new.example.com", RecordType::A, &answer(300), now);
        assert!(cache.bytes() <= max - max / 10, "{} of {max} bytes after making room", cache.bytes());
        assert!(cache.get("new.example.com", RecordType::A, 1, now).is_some());
        assert!(cache.get(&format!("{}.example.com", n - 1), RecordType::A, 1, now).is_some(), "the newest stay");
    }

    #[test]
    fn large_answers_are_not_kept_and_bytes_are_what_is_bounded() {
        let mut cache = Cache::new(64 << 10);
        let t0 = Instant::now();
        let mut large = answer(300);
        let name = Name::from_str("large.example.com.").expect("name");
        for _ in 0..60 {
            let txt = RData::TXT(hickory_proto::rr::rdata::TXT::new(vec!["x".repeat(200)]));
            large.add_answer(Record::from_rdata(name.clone(), 300, txt));
        }
        cache.put("large.example.com", RecordType::TXT, &large, t0);
        assert!(cache.is_empty(), "an answer over {MAX_ENTRY_BYTES} bytes is not cached");
        for n in 0..10_000u64 {
            cache.put(&format!("{n}.example.com"), RecordType::A, &answer(300), t0 + Duration::from_millis(n));
            assert!(cache.bytes() <= 64 << 10);
        }
        assert!(cache.len() > 100, "the cache is used: {}", cache.len());
        let fresh = cache.get("9999.example.com", RecordType::A, 1, t0 + Duration::from_secs(20));
        assert!(fresh.is_some(), "the newest entries stay");
    }
}
