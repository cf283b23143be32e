//! Raw ICMPv6 sockets for neighbour discovery (router solicitations and advertisements).

use std::io;

use socket2::{Domain, Protocol, Socket, Type};

/// A raw ICMPv6 socket on `device` (index `index`) that sends neighbour discovery as RFC 4861 wants it: hop
/// limit 255, multicast out of that device, and not looped back to this host's own sockets. Blocking; the
/// caller makes it non-blocking if it polls it.
pub fn neighbor_discovery_socket(device: &str, index: u32) -> io::Result<Socket> {
    let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
    socket.bind_device(Some(device.as_bytes()))?;
    socket.set_multicast_if_v6(index)?;
    socket.set_multicast_hops_v6(255)?;
    socket.set_unicast_hops_v6(255)?;
    socket.set_multicast_loop_v6(false)?;
    Ok(socket)
}

/// Makes the kernel deliver only ICMPv6 messages of type `icmp_type` to `socket` (ICMP6_FILTER).
pub fn receive_only(socket: &Socket, icmp_type: u8) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // A set bit blocks that type.
    let mut filter = [u32::MAX; 8];
    filter[usize::from(icmp_type >> 5)] &= !(1 << (icmp_type & 31));
    // SAFETY: the filter outlives the call and the kernel copies it; the descriptor is open while `socket` lives.
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_ICMPV6,
            1, // ICMP6_FILTER
            filter.as_ptr().cast(),
            std::mem::size_of_val(&filter) as libc::socklen_t,
        )
    };
    if set == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}
