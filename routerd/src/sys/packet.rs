//! AF_PACKET sockets: frames or IP packets of one interface, before the IP stack, through a kernel BPF filter.

use std::{
    io,
    os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd},
};

use tokio::io::unix::AsyncFd;

/// What a packet socket hands over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// From the network header on (`SOCK_DGRAM`).
    Packets,
    /// Whole link-layer frames (`SOCK_RAW`).
    Frames,
}

pub struct PacketSocket {
    fd: AsyncFd<OwnedFd>,
}

fn link_address(ifindex: u32, protocol: u16) -> io::Result<libc::sockaddr_ll> {
    // SAFETY: sockaddr_ll is plain old data; zero is a valid starting point.
    let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    address.sll_family = libc::AF_PACKET as u16;
    address.sll_protocol = protocol.to_be();
    address.sll_ifindex = i32::try_from(ifindex).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    Ok(address)
}

impl PacketSocket {
    /// A socket on interface `ifindex` for `protocol` (an `ETH_P_…` value), which the kernel runs through
    /// `filter` before it is queued here.
    pub fn open(
        ifindex: u32,
        framing: Framing,
        protocol: u16,
        filter: &[libc::sock_filter],
    ) -> io::Result<PacketSocket> {
        let kind = match framing {
            Framing::Packets => libc::SOCK_DGRAM,
            Framing::Frames => libc::SOCK_RAW,
        };
        // SAFETY: plain socket creation; the descriptor is owned right away.
        let raw = unsafe {
            libc::socket(libc::AF_PACKET, kind | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, i32::from(protocol.to_be()))
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh, valid descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        super::socket::attach_filter(fd.as_fd(), filter)?;
        let address = link_address(ifindex, protocol)?;
        // SAFETY: the address is a valid sockaddr_ll of the given size.
        let bound = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&address as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if bound != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: OwnedFd keeps the same open descriptor for as long as the AsyncFd owns it.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)?;
        Ok(PacketSocket { fd })
    }

    /// Replaces the kernel filter (atomically: every frame meets the old program or the new one).
    pub fn set_filter(&self, filter: &[libc::sock_filter]) -> io::Result<()> {
        super::socket::attach_filter(self.fd.get_ref().as_fd(), filter)
    }

    /// Sends `packet` (from its network header on) as a link-layer broadcast of `protocol` on `ifindex`.
    pub async fn send_broadcast(&self, ifindex: u32, protocol: u16, packet: &[u8]) -> io::Result<()> {
        let mut address = link_address(ifindex, protocol)?;
        address.sll_halen = 6;
        address.sll_addr[..6].copy_from_slice(&[0xff; 6]);
        loop {
            let mut guard = self.fd.writable().await?;
            let result = guard.try_io(|fd| {
                // SAFETY: packet and address are valid for the sizes given.
                let sent = unsafe {
                    libc::sendto(
                        fd.as_raw_fd(),
                        packet.as_ptr().cast(),
                        packet.len(),
                        0,
                        (&address as *const libc::sockaddr_ll).cast(),
                        std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                    )
                };
                if sent < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
            });
            match result {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Receives the next packet or frame into `buf`; its length.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            let result = guard.try_io(|fd| {
                // SAFETY: buf is valid for writes of buf.len() bytes.
                let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
            });
            match result {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }
}
