//! A UDP flood from inside a lab namespace, sent by a thread of the test itself (a namespace is per thread, so
//! no helper program is needed): as fast as one core sends, which a Python sender is far from.

use std::{
    fs::File,
    net::{SocketAddr, UdpSocket},
    os::fd::AsRawFd,
    time::{Duration, Instant},
};

use crate::{error::LabError, netns::Netns};

/// What a flood sent.
#[derive(Clone, Copy, Debug)]
pub struct FloodReport {
    pub sent: u64,
    pub elapsed: Duration,
}

impl FloodReport {
    /// Floods sent at the same time, as one.
    pub fn combined(reports: &[FloodReport]) -> FloodReport {
        FloodReport {
            sent: reports.iter().map(|r| r.sent).sum(),
            elapsed: reports.iter().map(|r| r.elapsed).max().unwrap_or_default(),
        }
    }

    pub fn per_second(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A running flood; [`Flood::finish`] waits for its end.
pub struct Flood {
    thread: std::thread::JoinHandle<Result<FloodReport, LabError>>,
}

impl Flood {
    /// Starts sending, from `netns`, the datagrams `fill` writes (given a running number) to `target` for
    /// `duration`, round robin from `source_ports` sockets (a hostile device uses many ports, so that every
    /// socket of a server that spreads ports over sockets is hit).
    pub fn start(
        netns: &Netns,
        target: SocketAddr,
        source_ports: usize,
        duration: Duration,
        mut fill: impl FnMut(u64, &mut Vec<u8>) + Send + 'static,
    ) -> Flood {
        let path = netns.path();
        let thread = std::thread::spawn(move || {
            let namespace =
                File::open(&path).map_err(|e| LabError::unexpected("opening the namespace", e.to_string()))?;
            // SAFETY: setns takes a descriptor of a namespace file and changes only this thread's namespace.
            if unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(LabError::unexpected(
                    "entering the namespace",
                    std::io::Error::last_os_error().to_string(),
                ));
            }
            let mut sockets = Vec::new();
            for _ in 0..source_ports.max(1) {
                let socket = UdpSocket::bind("0.0.0.0:0")
                    .and_then(|s| s.set_nonblocking(true).map(|()| s))
                    .map_err(|e| LabError::unexpected("a flood socket", e.to_string()))?;
                sockets.push(socket);
            }
            let (start, mut sent, mut packet) = (Instant::now(), 0u64, Vec::with_capacity(512));
            let mut number = 0u64;
            while start.elapsed() < duration {
                // A batch between clock reads.
                for _ in 0..64 {
                    packet.clear();
                    fill(number, &mut packet);
                    let socket = &sockets[(number % sockets.len() as u64) as usize];
                    number += 1;
                    if socket.send_to(&packet, target).is_ok() {
                        sent += 1;
                    }
                }
            }
            Ok(FloodReport { sent, elapsed: start.elapsed() })
        });
        Flood { thread }
    }

    pub fn finish(self) -> Result<FloodReport, LabError> {
        self.thread.join().map_err(|_| LabError::unexpected("the flood", "its thread panicked"))?
    }
}

/// A DNS query for `name` (type A) with id `id`, in wire format, appended to `out`.
pub fn dns_query(id: u16, name: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.extend_from_slice(&[0, 0, 1, 0, 1]);
}

/// The kernel's count of UDP datagrams dropped because a socket's receive buffer was full, in the namespace of
/// `pid` (from `/proc/PID/net/snmp`): what arrived faster than the program could read it.
pub fn udp_receive_buffer_drops(pid: u32) -> Option<u64> {
    let snmp = std::fs::read_to_string(format!("/proc/{pid}/net/snmp")).ok()?;
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (udp.next()?, udp.next()?);
    let column = names.split_whitespace().position(|n| n == "RcvbufErrors")?;
    values.split_whitespace().nth(column)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_dns_wire_format() {
        let mut out = Vec::new();
        dns_query(0x1234, "a.example", &mut out);
        assert_eq!(
            out,
            [
                0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0, 0,
                1, 0, 1
            ]
        );
    }

    #[test]
    fn receive_buffer_drops_are_read_from_this_process() {
        assert!(udp_receive_buffer_drops(std::process::id()).is_some());
    }
}
