//! UDP sockets bound to one interface, as the DHCP client and server need them.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use std::sync::Arc;

use tokio::{net::UdpSocket, sync::mpsc, task::JoinSet};

use crate::supervisor::ServiceError;

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

/// One task per socket that receives datagrams and passes what `accept` makes of each (with the socket's
/// position) to the service. A reader never ends while its service runs, so when one does (a receive error, a
/// panic), [`Readers::ended`] says why, as the service's error: the service fails and the supervisor starts it
/// again, instead of a deaf service that still says it is running.
pub struct Readers {
    name: &'static str,
    tasks: JoinSet<std::io::Error>,
}

impl Readers {
    pub fn spawn<T, F>(
        name: &'static str,
        sockets: &[Arc<UdpSocket>],
        received: mpsc::Sender<(usize, T)>,
        accept: F,
    ) -> Readers
    where
        T: Send + 'static,
        F: Fn(&[u8], SocketAddr) -> Option<T> + Clone + Send + 'static,
    {
        let mut tasks = JoinSet::new();
        for (position, socket) in sockets.iter().enumerate() {
            let (socket, received, accept) = (socket.clone(), received.clone(), accept.clone());
            tasks.spawn(async move {
                let mut buffer = vec![0u8; 1500];
                loop {
                    let (len, from) = match socket.recv_from(&mut buffer).await {
                        Ok(datagram) => datagram,
                        Err(error) => return error,
                    };
                    let Some(item) = buffer.get(..len).and_then(|payload| accept(payload, from)) else { continue };
                    if received.send((position, item)).await.is_err() {
                        return std::io::Error::other("the service stopped");
                    }
                }
            });
        }
        Readers { name, tasks }
    }

    /// Waits until a reader ends (never, while they all run) and returns why, as the service's error.
    pub async fn ended(&mut self) -> ServiceError {
        match self.tasks.join_next().await {
            Some(Ok(error)) => format!("{}: receiving stopped: {error}", self.name).into(),
            Some(Err(panic)) => format!("{}: the socket reader failed: {panic}", self.name).into(),
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reader_passes_datagrams_on_and_its_end_is_the_services_error() {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind"));
        // A port nobody listens on: after a send to it, the kernel reports "connection refused" to the next
        // receive of a connected socket, a real receive error.
        let closed = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let closed_addr = closed.local_addr().expect("address");
        drop(closed);
        let sender = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        sender.send_to(b"hello", socket.local_addr().expect("address")).await.expect("send");

        let (received, mut inbox) = mpsc::channel(4);
        let mut readers = Readers::spawn("test", std::slice::from_ref(&socket), received, |payload, _| {
            (payload != b"ignored").then(|| payload.to_vec())
        });
        assert_eq!(inbox.recv().await, Some((0, b"hello".to_vec())));

        socket.connect(closed_addr).await.expect("connect");
        socket.send(b"to nobody").await.expect("send");
        let error = readers.ended().await.to_string();
        assert!(error.starts_with("test: receiving stopped: ") && error.contains("refused"), "{error}");
    }
}
