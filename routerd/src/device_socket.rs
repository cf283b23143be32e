//! UDP sockets bound to one interface, as the DHCP client and server need them.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use tokio::net::UdpSocket;

/// An IPv4 UDP socket on `port` of `device` only, allowed to broadcast (also before the interface has an
/// address).
pub fn udp_v4(device: &str, port: u16) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_broadcast(true)?;
    socket.bind_device(Some(device.as_bytes()))?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).into())?;
    UdpSocket::from_std(socket.into())
}

/// Why a socket's reader task ended, as the error of the service that owns it: a reader never ends while its
/// service runs, so when one does, the service fails and the supervisor starts it again (instead of a deaf
/// service that still says it is running).
pub fn reader_ended(
    name: &str,
    ended: Result<std::io::Error, tokio::task::JoinError>,
) -> crate::supervisor::ServiceError {
    match ended {
        Ok(error) => format!("{name}: receiving stopped: {error}").into(),
        Err(panic) => format!("{name}: the socket reader failed: {panic}").into(),
    }
}
