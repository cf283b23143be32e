//! SNTP (RFC 4330) without I/O: the client's request and what a server's reply says about the local clock.
//! The request carries a random nonce as its transmit timestamp; a reply counts only if it echoes it back as
//! its origin timestamp (so an off-path attacker cannot answer), comes from a synchronised server, and is sane.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const NTP_PORT: u16 = 123;
const PACKET: usize = 48;
/// Seconds from 1900-01-01 (NTP's epoch) to 1970-01-01.
const NTP_TO_UNIX: u64 = 2_208_988_800;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SntpError {
    #[error("{0} bytes, shorter than an NTP packet")]
    Short(usize),
    #[error("not a server reply (mode {0})")]
    NotAReply(u8),
    #[error("NTP version {0}")]
    Version(u8),
    #[error("the server's clock is not synchronised (leap indicator 3)")]
    Unsynchronised,
    #[error("the server sent a kiss-o'-death or an impossible stratum ({0})")]
    Stratum(u8),
    #[error("the reply does not answer this request (origin timestamp differs)")]
    NotOurs,
    #[error("the reply carries no time")]
    NoTime,
}

/// A client request (version 4, mode 3) with `nonce` as its transmit timestamp.
pub fn request(nonce: u64) -> [u8; PACKET] {
    let mut packet = [0u8; PACKET];
    packet[0] = (4 << 3) | 3;
    packet[40..48].copy_from_slice(&nonce.to_be_bytes());
    packet
}

/// What one exchange measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Add this to the local clock to get the server's (negative: the local clock is ahead).
    pub offset_seconds: f64,
    /// The round trip, the server's time excluded.
    pub delay_seconds: f64,
    pub stratum: u8,
}

/// Reads a reply to the request with `nonce`, sent at `sent` and received at `received` (local clock).
pub fn parse_reply(reply: &[u8], nonce: u64, sent: SystemTime, received: SystemTime) -> Result<Sample, SntpError> {
    if reply.len() < PACKET {
        return Err(SntpError::Short(reply.len()));
    }
    let (leap, version, mode) = (reply[0] >> 6, (reply[0] >> 3) & 7, reply[0] & 7);
    if mode != 4 {
        return Err(SntpError::NotAReply(mode));
    }
    if !(3..=4).contains(&version) {
        return Err(SntpError::Version(version));
    }
    if leap == 3 {
        return Err(SntpError::Unsynchronised);
    }
    let stratum = reply[1];
    if stratum == 0 || stratum > 15 {
        return Err(SntpError::Stratum(stratum));
    }
    let timestamp = |at: usize| u64::from_be_bytes(reply[at..at + 8].try_into().unwrap_or_default());
    if timestamp(24) != nonce {
        return Err(SntpError::NotOurs);
    }
    let (server_received, server_sent) = (timestamp(32), timestamp(40));
    if server_received == 0 || server_sent == 0 {
        return Err(SntpError::NoTime);
    }
    let (t1, t4) = (unix_seconds(sent), unix_seconds(received));
    let (t2, t3) = (ntp_to_unix_seconds(server_received), ntp_to_unix_seconds(server_sent));
    Ok(Sample { offset_seconds: ((t2 - t1) + (t3 - t4)) / 2.0, delay_seconds: (t4 - t1) - (t3 - t2), stratum })
}

fn unix_seconds(time: SystemTime) -> f64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => since.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    }
}

/// An NTP timestamp as seconds since 1970. Era 0 ends in 2036: seconds below 2^31 are taken as era 1.
fn ntp_to_unix_seconds(timestamp: u64) -> f64 {
    let seconds = timestamp >> 32;
    let fraction = (timestamp & 0xffff_ffff) as f64 / 4_294_967_296.0;
    let seconds = if seconds < (1 << 31) { seconds + (1 << 32) } else { seconds };
    (seconds as f64 - NTP_TO_UNIX as f64) + fraction
}

/// `time` as an NTP timestamp (for tests and servers).
pub fn to_ntp(time: SystemTime) -> u64 {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let seconds = (since.as_secs() + NTP_TO_UNIX) & 0xffff_ffff;
    let fraction = ((u64::from(since.subsec_nanos())) << 32) / 1_000_000_000;
    (seconds << 32) | fraction
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(nonce: u64, server_time: SystemTime) -> [u8; PACKET] {
        let mut packet = [0u8; PACKET];
        packet[0] = (4 << 3) | 4;
        packet[1] = 2;
        packet[24..32].copy_from_slice(&nonce.to_be_bytes());
        packet[32..40].copy_from_slice(&to_ntp(server_time).to_be_bytes());
        packet[40..48].copy_from_slice(&to_ntp(server_time + Duration::from_millis(1)).to_be_bytes());
        packet
    }

    #[test]
    fn the_offset_is_the_servers_clock_minus_ours() {
        let request = request(0xfeed);
        assert_eq!(request[0], 0x23);
        // Our clock reads 2020; the server's, six years later; 20 ms round trip.
        let sent = UNIX_EPOCH + Duration::from_secs(1_577_836_800);
        let received = sent + Duration::from_millis(20);
        let server = UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        let sample = parse_reply(&reply(0xfeed, server), 0xfeed, sent, received).expect("a good reply");
        let expected = 1_796_000_000.0 - 1_577_836_800.0;
        assert!((sample.offset_seconds - expected).abs() < 0.05, "{sample:?}");
        assert!((sample.delay_seconds - 0.019).abs() < 0.005, "{sample:?}");
    }

    #[test]
    fn replies_that_do_not_answer_us_or_come_from_an_unsynchronised_server_are_refused() {
        let now = UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        let good = reply(7, now);
        assert_eq!(parse_reply(&good, 8, now, now), Err(SntpError::NotOurs));
        assert_eq!(parse_reply(&good[..40], 7, now, now), Err(SntpError::Short(40)));
        let mut kiss = good;
        kiss[1] = 0;
        assert_eq!(parse_reply(&kiss, 7, now, now), Err(SntpError::Stratum(0)));
        let mut unsynchronised = good;
        unsynchronised[0] |= 3 << 6;
        assert_eq!(parse_reply(&unsynchronised, 7, now, now), Err(SntpError::Unsynchronised));
        let mut request_echo = good;
        request_echo[0] = 0x23;
        assert_eq!(parse_reply(&request_echo, 7, now, now), Err(SntpError::NotAReply(3)));
        let mut empty = good;
        empty[40..48].fill(0);
        assert_eq!(parse_reply(&empty, 7, now, now), Err(SntpError::NoTime));
    }

    #[test]
    fn timestamps_after_2036_are_in_era_one() {
        let after = UNIX_EPOCH + Duration::from_secs(2_200_000_000);
        let back = ntp_to_unix_seconds(to_ntp(after));
        assert!((back - 2_200_000_000.0).abs() < 0.001, "{back}");
    }
}
