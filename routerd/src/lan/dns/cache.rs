//! Answers from upstream, kept for their TTL (negative answers for the SOA's minimum, RFC 2308), handed out
//! with the TTLs counted down.

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
pub const MAX_ENTRY_BYTES: usize = 4096;
/// What an entry costs beyond its wire size (the key, the decoded message, bookkeeping), roughly.
const ENTRY_OVERHEAD: usize = 256;
/// The cache's size when routerd.json does not say (`dns_cache_bytes`).
pub const DEFAULT_BYTES: usize = 8 << 20;

struct Entry {
    response: Message,
    stored: Instant,
    ttl: Duration,
    /// What the entry counts against the cache's size.
    cost: usize,
    /// The response encoded for one age in whole seconds: most hits within a second reuse these bytes and
    /// only get their ID and question patched in.
    encoded: Option<(u64, Vec<u8>)>,
}

pub struct Cache {
    entries: HashMap<(String, RecordType), Entry>,
    /// The most the entries may cost together, in bytes.
    max_bytes: usize,
    bytes: usize,
}

impl Cache {
    pub fn new(max_bytes: usize) -> Cache {
        Cache { entries: HashMap::new(), max_bytes, bytes: 0 }
    }

    /// What the entries cost now (their wire size plus a fixed overhead each).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The cached response for (name, type) with TTLs reduced by its age, for a request with `id`.
    pub fn get(&self, name: &str, record_type: RecordType, id: u16, now: Instant) -> Option<Message> {
        let entry = self.entries.get(&(name.to_string(), record_type))?;
        let age = now.saturating_duration_since(entry.stored);
        if age >= entry.ttl {
            return None;
        }
        let elapsed = u32::try_from(age.as_secs()).unwrap_or(u32::MAX);
        let mut response = entry.response.clone();
        response.metadata.id = id;
        for record in response.answers.iter_mut().chain(response.authorities.iter_mut()) {
            record.ttl = record.ttl.saturating_sub(elapsed);
        }
        Some(response)
    }

    /// Like [`Cache::get`], as bytes: the wire form of the answer to `request` (whose first `question_end` bytes
    /// are its header and question), reusing the encoding of the same second.
    pub fn get_encoded(
        &mut self,
        name: &str,
        record_type: RecordType,
        request: &[u8],
        question_end: usize,
        now: Instant,
    ) -> Option<Vec<u8>> {
        let entry = self.entries.get_mut(&(name.to_string(), record_type))?;
        let age = now.saturating_duration_since(entry.stored);
        if age >= entry.ttl {
            return None;
        }
        let seconds = age.as_secs();
        let reusable = entry.encoded.as_ref().filter(|(at, _)| *at == seconds).map(|(_, bytes)| bytes.clone());
        let mut bytes = match reusable {
            Some(bytes) => bytes,
            None => {
                let elapsed = u32::try_from(seconds).unwrap_or(u32::MAX);
                let mut response = entry.response.clone();
                for record in response.answers.iter_mut().chain(response.authorities.iter_mut()) {
                    record.ttl = record.ttl.saturating_sub(elapsed);
                }
                let bytes = response.to_vec().ok()?;
                entry.encoded = Some((seconds, bytes.clone()));
                bytes
            }
        };
        // The ID, and the question exactly as asked (its letter case may differ: DNS 0x20), which has the same
        // length as the cached one. The RD flag is echoed.
        if bytes.len() < question_end || request.len() < question_end {
            return None;
        }
        bytes[..2].copy_from_slice(&request[..2]);
        bytes[2] = (bytes[2] & !0x01) | (request[2] & 0x01);
        bytes[12..question_end].copy_from_slice(&request[12..question_end]);
        Some(bytes)
    }

    /// Stores a NOERROR or NXDOMAIN response; others (SERVFAIL, REFUSED) are not cached.
    pub fn put(&mut self, name: &str, record_type: RecordType, response: &Message, now: Instant) {
        let ttl = match response.metadata.response_code {
            ResponseCode::NoError if !response.answers.is_empty() => {
                response.answers.iter().map(|r| r.ttl).min().map(|t| Duration::from_secs(u64::from(t)))
            }
            ResponseCode::NoError | ResponseCode::NXDomain => Some(negative_ttl(response)),
            _ => None,
        };
        let Some(ttl) = ttl.map(|t| t.min(MAX_TTL)).filter(|t| !t.is_zero()) else { return };
        let Some(wire) = response.to_vec().ok().map(|b| b.len()).filter(|len| *len <= MAX_ENTRY_BYTES) else {
            return;
        };
        let cost = wire + name.len() + ENTRY_OVERHEAD;
        let key = (name.to_string(), record_type);
        if let Some(old) = self.entries.remove(&key) {
            self.bytes -= old.cost;
        }
        if self.bytes + cost > self.max_bytes {
            let mut freed = 0;
            self.entries.retain(|_, e| {
                let live = now.saturating_duration_since(e.stored) < e.ttl;
                if !live {
                    freed += e.cost;
                }
                live
            });
            self.bytes -= freed;
            if self.bytes + cost > self.max_bytes {
                // Still full of live entries: drop the oldest tenth (by cost) rather than grow without bound.
                let mut ages: Vec<_> = self.entries.iter().map(|(k, e)| (e.stored, k.clone())).collect();
                ages.sort();
                let target = self.max_bytes.saturating_sub(self.max_bytes / 10).saturating_sub(cost);
                for (_, key) in ages {
                    if self.bytes <= target {
                        break;
                    }
                    if let Some(old) = self.entries.remove(&key) {
                        self.bytes -= old.cost;
                    }
                }
            }
        }
        self.bytes += cost;
        let entry = Entry { response: response.clone(), stored: now, ttl, cost, encoded: None };
        self.entries.insert(key, entry);
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
