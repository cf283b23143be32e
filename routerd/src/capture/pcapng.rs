//! A small pcapng writer (Section Header, Interface Description, Enhanced Packet and Interface Statistics
//! blocks; little-endian), enough for Wireshark and tshark to read a live capture from a pipe.

/// Link type of captured frames: Ethernet.
pub(crate) const LINKTYPE_ETHERNET: u16 = 1;

const SECTION_HEADER: u32 = 0x0A0D_0D0A;
const INTERFACE_DESCRIPTION: u32 = 0x0000_0001;
const ENHANCED_PACKET: u32 = 0x0000_0006;
const INTERFACE_STATISTICS: u32 = 0x0000_0005;

const OPT_END: u16 = 0;
const OPT_COMMENT: u16 = 1;
const IF_NAME: u16 = 2;
const IF_TSRESOL: u16 = 9;
const ISB_IFDROP: u16 = 5;

fn pad4(length: usize) -> usize {
    (4 - length % 4) % 4
}

fn option(out: &mut Vec<u8>, code: u16, value: &[u8]) {
    out.extend(code.to_le_bytes());
    out.extend((value.len() as u16).to_le_bytes());
    out.extend(value);
    out.extend(std::iter::repeat_n(0u8, pad4(value.len())));
}

fn block(kind: u32, body: &[u8]) -> Vec<u8> {
    let total = (12 + body.len()) as u32;
    let mut out = Vec::with_capacity(total as usize);
    out.extend(kind.to_le_bytes());
    out.extend(total.to_le_bytes());
    out.extend(body);
    out.extend(total.to_le_bytes());
    out
}

/// The Section Header Block that starts every pcapng stream.
pub(crate) fn section_header(comment: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend(0x1A2B_3C4Du32.to_le_bytes());
    body.extend(1u16.to_le_bytes());
    body.extend(0u16.to_le_bytes());
    body.extend((-1i64).to_le_bytes()); // section length unknown: a live stream
    if !comment.is_empty() {
        option(&mut body, OPT_COMMENT, comment.as_bytes());
    }
    option(&mut body, OPT_END, &[]);
    block(SECTION_HEADER, &body)
}

/// An Interface Description Block for an Ethernet interface, timestamps in microseconds.
pub(crate) fn interface_description(name: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend(LINKTYPE_ETHERNET.to_le_bytes());
    body.extend(0u16.to_le_bytes());
    body.extend(0u32.to_le_bytes()); // no snap length limit
    option(&mut body, IF_NAME, name.as_bytes());
    option(&mut body, IF_TSRESOL, &[6]);
    option(&mut body, OPT_END, &[]);
    block(INTERFACE_DESCRIPTION, &body)
}

/// An Enhanced Packet Block: `frame` captured on interface `interface` (its index in this section) at
/// `micros` since the Unix epoch, `original_length` bytes on the wire.
pub(crate) fn enhanced_packet(interface: u32, micros: u64, frame: &[u8], original_length: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(20 + frame.len() + 3);
    body.extend(interface.to_le_bytes());
    body.extend(((micros >> 32) as u32).to_le_bytes());
    body.extend((micros as u32).to_le_bytes());
    body.extend((frame.len() as u32).to_le_bytes());
    body.extend((original_length as u32).to_le_bytes());
    body.extend(frame);
    body.extend(std::iter::repeat_n(0u8, pad4(frame.len())));
    block(ENHANCED_PACKET, &body)
}

/// An Interface Statistics Block saying how many packets were dropped for this reader on `interface`.
pub(crate) fn interface_statistics(interface: u32, micros: u64, dropped: u64) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend(interface.to_le_bytes());
    body.extend(((micros >> 32) as u32).to_le_bytes());
    body.extend((micros as u32).to_le_bytes());
    option(&mut body, ISB_IFDROP, &dropped.to_le_bytes());
    option(&mut body, OPT_END, &[]);
    block(INTERFACE_STATISTICS, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal Ethernet + IPv4 + UDP frame (DHCP ports) with `payload`.
    pub(crate) fn udp_frame(payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![0xff; 6];
        frame.extend([2, 0, 0, 0, 2, 1, 0x08, 0x00]);
        let total = 28 + payload.len();
        frame.extend([0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64, 17, 0, 0]);
        frame.extend([0, 0, 0, 0, 255, 255, 255, 255]);
        let udp = 8 + payload.len();
        frame.extend([0, 68, 0, 67, (udp >> 8) as u8, udp as u8, 0, 0]);
        frame.extend(payload);
        frame
    }

    #[test]
    fn blocks_are_whole_4_byte_multiples_with_matching_lengths() {
        for block in [
            section_header("routerd"),
            interface_description("lan0"),
            enhanced_packet(0, 1_700_000_000_000_000, &udp_frame(b"abc"), 45),
            interface_statistics(0, 1_700_000_000_000_000, 3),
        ] {
            assert_eq!(block.len() % 4, 0);
            let total = u32::from_le_bytes(block[4..8].try_into().expect("4 bytes")) as usize;
            assert_eq!(total, block.len());
            assert_eq!(block[block.len() - 4..], block[4..8]);
        }
    }

    /// tshark (Debian package tshark) reads what we write, from a pipe, with names and drops.
    #[test]
    fn tshark_reads_the_stream() {
        let Ok(mut tshark) = std::process::Command::new("tshark")
            .args(["-r", "-", "-T", "fields", "-e", "frame.interface_name", "-e", "udp.dstport"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
        else {
            panic!("tshark is not installed: apt-get install tshark (scripts/setup.sh does)");
        };
        let mut stream = section_header("routerd test");
        stream.extend(interface_description("uplink0"));
        stream.extend(interface_description("lan0"));
        stream.extend(enhanced_packet(1, 1_700_000_000_000_000, &udp_frame(b"hello"), 47));
        stream.extend(enhanced_packet(0, 1_700_000_000_000_001, &udp_frame(b"world!"), 48));
        stream.extend(interface_statistics(1, 1_700_000_000_000_002, 7));
        use std::io::Write;
        tshark.stdin.take().expect("stdin").write_all(&stream).expect("write");
        let output = tshark.wait_with_output().expect("tshark ran");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{text}{}", String::from_utf8_lossy(&output.stderr));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines, ["lan0\t67", "uplink0\t67"], "{text}");
    }
}
