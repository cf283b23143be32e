//! The installer's network set-up as PID 1 of the recovery initramfs (mounting, syncing and restarting come from
//! `routerd_init::sys`, which init uses too).

use std::{io, net::Ipv4Addr};

/// The network interface whose MAC is `mac` (lower-case, colon-separated).
pub fn interface_with_mac(mac: &str) -> Option<String> {
    std::fs::read_dir("/sys/class/net").ok()?.flatten().find_map(|entry| {
        let address = std::fs::read_to_string(entry.path().join("address")).ok()?;
        (address.trim().eq_ignore_ascii_case(mac)).then(|| entry.file_name().to_string_lossy().to_string())
    })
}

/// Gives `interface` the IPv4 `address` with `netmask` and brings it up (SIOCSIFADDR, SIOCSIFNETMASK,
/// SIOCSIFFLAGS on an ordinary socket).
pub fn configure_ipv4(interface: &str, address: Ipv4Addr, netmask: Ipv4Addr) -> io::Result<()> {
    // SAFETY: a plain datagram socket, closed below.
    let socket = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if socket < 0 {
        return Err(io::Error::last_os_error());
    }
    let result = configure_with(socket, interface, address, netmask);
    // SAFETY: our own descriptor.
    unsafe { libc::close(socket) };
    result
}

fn request(interface: &str) -> io::Result<libc::ifreq> {
    let name = interface.as_bytes();
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("interface name {interface:?}")));
    }
    // SAFETY: ifreq is plain data; all zeros is a valid value.
    let mut ifreq: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in ifreq.ifr_name.iter_mut().zip(name) {
        *slot = *byte as libc::c_char;
    }
    Ok(ifreq)
}

fn sockaddr(address: Ipv4Addr) -> libc::sockaddr {
    let inet = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: u32::from(address).to_be() },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size; the kernel reads it as sockaddr_in by its family.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(inet) }
}

fn check(result: libc::c_int) -> io::Result<()> {
    if result == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

fn configure_with(socket: libc::c_int, interface: &str, address: Ipv4Addr, netmask: Ipv4Addr) -> io::Result<()> {
    let mut ifreq = request(interface)?;
    ifreq.ifr_ifru.ifru_addr = sockaddr(address);
    // SAFETY: the ioctl reads an ifreq.
    check(unsafe { libc::ioctl(socket, libc::SIOCSIFADDR, &ifreq) })?;
    let mut ifreq = request(interface)?;
    ifreq.ifr_ifru.ifru_netmask = sockaddr(netmask);
    // SAFETY: as above.
    check(unsafe { libc::ioctl(socket, libc::SIOCSIFNETMASK, &ifreq) })?;
    let mut ifreq = request(interface)?;
    // SAFETY: the ioctl fills in the flags of an ifreq.
    check(unsafe { libc::ioctl(socket, libc::SIOCGIFFLAGS, &mut ifreq) })?;
    // SAFETY: SIOCGIFFLAGS set the flags member.
    unsafe { ifreq.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    // SAFETY: the ioctl reads an ifreq.
    check(unsafe { libc::ioctl(socket, libc::SIOCSIFFLAGS, &ifreq) })
}
