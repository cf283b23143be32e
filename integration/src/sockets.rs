//! Whether a process's network namespace has a socket bound to a port, from `/proc/PID/net/*` (which shows the
//! namespace of that PID), so readiness checks need no extra process.

use std::fs;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Udp,
    Tcp,
}

/// TCP_LISTEN in /proc/net/tcp.
const TCP_LISTEN: &str = "0A";

/// Whether some socket in the namespace of `pid` is bound to `port` (listening, for TCP), over IPv4 or IPv6.
pub fn is_bound(pid: u32, protocol: Protocol, port: u16) -> bool {
    let (files, listen_only) = match protocol {
        Protocol::Udp => (["udp", "udp6"], false),
        Protocol::Tcp => (["tcp", "tcp6"], true),
    };
    files.iter().any(|file| {
        fs::read_to_string(format!("/proc/{pid}/net/{file}"))
            .is_ok_and(|table| table_has_port(&table, port, listen_only))
    })
}

fn table_has_port(table: &str, port: u16, listen_only: bool) -> bool {
    let wanted = format!("{port:04X}");
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local_port = fields.get(1).and_then(|local| local.rsplit_once(':')).map(|(_, port)| port);
        local_port == Some(wanted.as_str()) && (!listen_only || fields.get(3) == Some(&TCP_LISTEN))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2483 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:9C40 0100007F:2483 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1";

    #[test]
    fn finds_listening_ports_only() {
        assert!(table_has_port(TCP, 9347, true));
        // 0x9C40 = 40000 is the client end of an established connection, not a listener.
        assert!(!table_has_port(TCP, 40000, true));
        assert!(table_has_port(TCP, 40000, false));
        assert!(!table_has_port(TCP, 53, false));
    }

    #[test]
    fn this_process_sees_its_own_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        assert!(is_bound(std::process::id(), Protocol::Tcp, port));
    }
}
