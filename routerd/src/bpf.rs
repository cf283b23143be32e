//! Classic BPF programs for packet sockets, written with named jump targets instead of counted offsets, and
//! the capture's filter: DHCPv4, DHCPv6, DNS and neighbour discovery (ICMPv6 133–136), nothing else — so the
//! capture never sees the forwarded traffic on the uplink.

use std::collections::HashMap;

/// An instruction whose jumps name labels.
#[derive(Clone, Debug)]
enum Step {
    Label(&'static str),
    Op { code: u16, k: u32, jt: Option<&'static str>, jf: Option<&'static str> },
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Program {
    steps: Vec<Step>,
}

// Classic BPF opcodes (linux/filter.h).
const LD_H_ABS: u16 = 0x28;
const LD_B_ABS: u16 = 0x30;
const LD_H_IND: u16 = 0x48;
const LDX_B_MSH: u16 = 0xb1;
const JEQ_K: u16 = 0x15;
const JGT_K: u16 = 0x25;
const JGE_K: u16 = 0x35;
const JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BpfError {
    #[error("jump to unknown label {0}")]
    UnknownLabel(&'static str),
    #[error("jump to {0} goes backwards or further than 255 instructions")]
    Unreachable(&'static str),
}

impl Program {
    fn op(mut self, code: u16, k: u32, jt: Option<&'static str>, jf: Option<&'static str>) -> Self {
        self.steps.push(Step::Op { code, k, jt, jf });
        self
    }

    pub(crate) fn label(mut self, name: &'static str) -> Self {
        self.steps.push(Step::Label(name));
        self
    }

    pub(crate) fn load_byte(self, offset: u32) -> Self {
        self.op(LD_B_ABS, offset, None, None)
    }

    pub(crate) fn load_half(self, offset: u32) -> Self {
        self.op(LD_H_ABS, offset, None, None)
    }

    /// X = 4 * (packet[offset] & 0xf): the IPv4 header length.
    pub(crate) fn load_ip_header_length(self, offset: u32) -> Self {
        self.op(LDX_B_MSH, offset, None, None)
    }

    /// A = the 16 bits at X + offset.
    pub(crate) fn load_half_indirect(self, offset: u32) -> Self {
        self.op(LD_H_IND, offset, None, None)
    }

    /// If A == k go to `then`, else fall through.
    pub(crate) fn if_equal(self, k: u32, then: &'static str) -> Self {
        self.op(JEQ_K, k, Some(then), None)
    }

    pub(crate) fn if_equal_else(self, k: u32, then: &'static str, otherwise: &'static str) -> Self {
        self.op(JEQ_K, k, Some(then), Some(otherwise))
    }

    pub(crate) fn if_greater(self, k: u32, then: &'static str) -> Self {
        self.op(JGT_K, k, Some(then), None)
    }

    pub(crate) fn if_less(self, k: u32, then: &'static str) -> Self {
        // A < k  is  !(A >= k)
        self.op(JGE_K, k, None, Some(then))
    }

    pub(crate) fn if_any_bits(self, k: u32, then: &'static str) -> Self {
        self.op(JSET_K, k, Some(then), None)
    }

    pub(crate) fn ret(self, k: u32) -> Self {
        self.op(RET_K, k, None, None)
    }

    /// The program with its labels resolved.
    pub(crate) fn assemble(&self) -> Result<Vec<libc::sock_filter>, BpfError> {
        let mut labels = HashMap::new();
        let mut index = 0usize;
        for step in &self.steps {
            match step {
                Step::Label(name) => {
                    labels.insert(*name, index);
                }
                Step::Op { .. } => index += 1,
            }
        }
        let mut out = Vec::new();
        for step in &self.steps {
            let Step::Op { code, k, jt, jf } = step else { continue };
            let here = out.len();
            let offset = |label: &Option<&'static str>| -> Result<u8, BpfError> {
                let Some(label) = label else { return Ok(0) };
                let target = *labels.get(label).ok_or(BpfError::UnknownLabel(label))?;
                let distance = target.checked_sub(here + 1).ok_or(BpfError::Unreachable(label))?;
                u8::try_from(distance).map_err(|_| BpfError::Unreachable(label))
            };
            out.push(libc::sock_filter { code: *code, jt: offset(jt)?, jf: offset(jf)?, k: *k });
        }
        Ok(out)
    }
}

/// The capture filter for Ethernet frames (a SOCK_RAW packet socket): UDP to or from ports 67 and 68 over IPv4
/// (not fragments), UDP to or from 546 and 547 over IPv6, ICMPv6 router/neighbour solicitations and
/// advertisements, and with `dns` UDP to or from port 53 over both. IPv6 extension headers are not followed
/// (configuration traffic does not use them).
pub(crate) fn configuration_traffic(dns: bool) -> Program {
    const ACCEPT: u32 = 0x0004_0000;
    // Without DNS, its checks test a port no datagram carries (0), so the program keeps one shape.
    let dns_port = if dns { 53 } else { 0 };
    Program::default()
        .load_half(12)
        .if_equal_else(0x0800, "ipv4", "not-ipv4")
        .label("ipv4")
        .load_byte(23)
        .if_equal_else(17, "udp4", "drop")
        .label("udp4")
        .load_half(20)
        .if_any_bits(0x1fff, "drop")
        .load_ip_header_length(14)
        .load_half_indirect(14)
        .if_equal(67, "accept")
        .if_equal(68, "accept")
        .if_equal(dns_port, "accept")
        .load_half_indirect(16)
        .if_equal(67, "accept")
        .if_equal(68, "accept")
        .if_equal_else(dns_port, "accept", "drop")
        .label("not-ipv4")
        .if_equal_else(0x86dd, "ipv6", "drop")
        .label("ipv6")
        .load_byte(20)
        .if_equal_else(17, "udp6", "not-udp6")
        .label("udp6")
        .load_half(54)
        .if_equal(546, "accept")
        .if_equal(547, "accept")
        .if_equal(dns_port, "accept")
        .load_half(56)
        .if_equal(546, "accept")
        .if_equal(547, "accept")
        .if_equal_else(dns_port, "accept", "drop")
        .label("not-udp6")
        .if_equal_else(58, "icmp6", "drop")
        .label("icmp6")
        .load_byte(54)
        .if_less(133, "drop")
        .if_greater(136, "drop")
        .label("accept")
        .ret(ACCEPT)
        .label("drop")
        .ret(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a classic BPF program over `packet` (the subset of instructions above), as the kernel would.
    fn run(program: &[libc::sock_filter], packet: &[u8]) -> u32 {
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let half = |at: usize| packet.get(at..at + 2).map(|b| u32::from(u16::from_be_bytes([b[0], b[1]])));
        loop {
            let Some(op) = program.get(pc) else { return 0 };
            pc += 1;
            let jump = |taken: bool| usize::from(if taken { op.jt } else { op.jf });
            match op.code {
                LD_B_ABS => match packet.get(op.k as usize) {
                    Some(b) => a = u32::from(*b),
                    None => return 0,
                },
                LD_H_ABS => match half(op.k as usize) {
                    Some(h) => a = h,
                    None => return 0,
                },
                LDX_B_MSH => match packet.get(op.k as usize) {
                    Some(b) => x = 4 * u32::from(b & 0xf),
                    None => return 0,
                },
                LD_H_IND => match half((x + op.k) as usize) {
                    Some(h) => a = h,
                    None => return 0,
                },
                JEQ_K => pc += jump(a == op.k),
                JGT_K => pc += jump(a > op.k),
                JGE_K => pc += jump(a >= op.k),
                JSET_K => pc += jump(a & op.k != 0),
                RET_K => return op.k,
                other => panic!("opcode {other:#x} not emulated"),
            }
        }
    }

    fn ipv4_udp(src: u16, dst: u16, fragment: u16) -> Vec<u8> {
        let mut frame = vec![0; 12];
        frame.extend([0x08, 0x00, 0x45, 0, 0, 28, 0, 0]);
        frame.extend(fragment.to_be_bytes());
        frame.extend([64, 17, 0, 0, 192, 0, 2, 11, 192, 0, 2, 1]);
        frame.extend(src.to_be_bytes());
        frame.extend(dst.to_be_bytes());
        frame.extend([0, 8, 0, 0]);
        frame
    }

    fn ipv6(next_header: u8, payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![0; 12];
        frame.extend([0x86, 0xdd, 0x60, 0, 0, 0, 0, payload.len() as u8, next_header, 255]);
        frame.extend([0; 32]);
        frame.extend(payload);
        frame
    }

    #[test]
    fn the_filter_keeps_configuration_traffic_only() {
        let program = configuration_traffic(true).assemble().expect("assembles");
        let kept = |frame: &[u8]| run(&program, frame) != 0;
        let without_dns = configuration_traffic(false).assemble().expect("assembles");
        let kept_without_dns = |frame: &[u8]| run(&without_dns, frame) != 0;
        assert!(kept_without_dns(&ipv4_udp(68, 67, 0)) && kept_without_dns(&ipv6(58, &[134, 0, 0, 0])));
        assert!(!kept_without_dns(&ipv4_udp(40000, 53, 0)) && !kept_without_dns(&ipv4_udp(53, 40000, 0)));
        assert!(kept(&ipv4_udp(68, 67, 0)), "DHCPv4 request");
        assert!(kept(&ipv4_udp(67, 68, 0x4000)), "DHCPv4 reply, don't-fragment set");
        assert!(kept(&ipv4_udp(40000, 53, 0)) && kept(&ipv4_udp(53, 40000, 0)), "DNS");
        assert!(!kept(&ipv4_udp(40000, 443, 0)), "QUIC to the internet");
        assert!(!kept(&ipv4_udp(68, 67, 0x2001)), "a fragment");
        let mut tcp = ipv4_udp(40000, 53, 0);
        tcp[23] = 6;
        assert!(!kept(&tcp), "TCP");
        let udp6 = |src: u16, dst: u16| ipv6(17, &[src.to_be_bytes(), dst.to_be_bytes(), [0, 8], [0, 0]].concat());
        assert!(!kept_without_dns(&udp6(50000, 53)) && kept_without_dns(&udp6(546, 547)));
        assert!(kept(&udp6(546, 547)) && kept(&udp6(547, 546)) && kept(&udp6(50000, 53)), "DHCPv6 and DNS");
        assert!(!kept(&udp6(50000, 443)));
        for kind in 133..=136 {
            assert!(kept(&ipv6(58, &[kind, 0, 0, 0])), "ICMPv6 type {kind}");
        }
        for kind in [1, 128, 129, 137, 143] {
            assert!(!kept(&ipv6(58, &[kind, 0, 0, 0])), "ICMPv6 type {kind}");
        }
        assert!(!kept(&[0; 10]), "a runt frame");
        let mut arp = vec![0; 12];
        arp.extend([0x08, 0x06]);
        assert!(!kept(&arp), "ARP");
    }

    /// The kernel checks a program when it is attached; a packet socket with protocol 0 receives nothing, so
    /// this touches no traffic.
    #[test]
    fn the_kernel_accepts_the_program() {
        use std::os::fd::AsFd;
        let filter = configuration_traffic(true).assemble().expect("assembles");
        let socket = socket2::Socket::new(socket2::Domain::PACKET, socket2::Type::RAW, None)
            .unwrap_or_else(|error| panic!("packet sockets need root (CAP_NET_RAW): {error}"));
        let attached = crate::sys::socket::attach_filter(socket.as_fd(), &filter);
        assert!(attached.is_ok(), "{attached:?}");
    }

    #[test]
    fn labels_resolve_and_mistakes_are_caught() {
        assert_eq!(
            Program::default().if_equal(1, "nowhere").ret(0).assemble().err(),
            Some(BpfError::UnknownLabel("nowhere"))
        );
        let backwards = Program::default().label("top").ret(0).if_equal(1, "top");
        assert_eq!(backwards.assemble().err(), Some(BpfError::Unreachable("top")));
    }
}
