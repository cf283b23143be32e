//! Asking the ISP's resolvers: UDP from a fresh random port per query, the next server when one fails or does
//! not answer in time, and TCP when an answer is truncated.

use std::{net::SocketAddr, time::Duration};

use hickory_proto::op::{Message, Query, ResponseCode};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpStream, UdpSocket},
};

use crate::uplink::entropy::{Entropy, SystemEntropy};

const TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("no upstream DNS server is known (no lease from the ISP yet, and none in routerd.json)")]
    NoServers,
    #[error("no upstream DNS server answered: {0}")]
    AllFailed(String),
}

/// Resolves `query` through `servers`, in order.
pub async fn resolve(servers: &[SocketAddr], query: &Query) -> Result<Message, UpstreamError> {
    if servers.is_empty() {
        return Err(UpstreamError::NoServers);
    }
    let mut problems = Vec::new();
    for server in servers {
        match ask(*server, query).await {
            Ok(response)
                if matches!(response.metadata.response_code, ResponseCode::NoError | ResponseCode::NXDomain) =>
            {
                return Ok(response);
            }
            Ok(response) => problems.push(format!("{server}: {}", response.metadata.response_code)),
            Err(problem) => problems.push(format!("{server}: {problem}")),
        }
    }
    Err(UpstreamError::AllFailed(problems.join("; ")))
}

async fn ask(server: SocketAddr, query: &Query) -> Result<Message, String> {
    let mut request = Message::query();
    request.metadata.id = SystemEntropy::default().next_u32() as u16;
    request.metadata.recursion_desired = true;
    request.add_query(query.clone());
    let bytes = request.to_vec().map_err(|e| e.to_string())?;
    let local: SocketAddr = if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().map_err(|_| "address")?;
    let socket = UdpSocket::bind(local).await.map_err(|e| e.to_string())?;
    socket.connect(server).await.map_err(|e| e.to_string())?;
    socket.send(&bytes).await.map_err(|e| e.to_string())?;
    let mut buffer = vec![0u8; 4096];
    let response = tokio::time::timeout(TIMEOUT, async {
        loop {
            let len = socket.recv(&mut buffer).await.map_err(|e| e.to_string())?;
            // Only the answer to this question from this server counts (a spoofed or stale one is skipped).
            if let Ok(response) = Message::from_vec(&buffer[..len])
                && response.metadata.id == request.metadata.id
                && response.queries == request.queries
            {
                return Ok::<Message, String>(response);
            }
        }
    })
    .await
    .map_err(|_| format!("no answer within {} s", TIMEOUT.as_secs()))??;
    if response.metadata.truncation { ask_tcp(server, &request, &bytes).await } else { Ok(response) }
}

async fn ask_tcp(server: SocketAddr, request: &Message, bytes: &[u8]) -> Result<Message, String> {
    tokio::time::timeout(TIMEOUT, async {
        let mut stream = TcpStream::connect(server).await.map_err(|e| e.to_string())?;
        let len = u16::try_from(bytes.len()).map_err(|_| "query too long")?;
        stream.write_all(&len.to_be_bytes()).await.map_err(|e| e.to_string())?;
        stream.write_all(bytes).await.map_err(|e| e.to_string())?;
        let mut prefix = [0u8; 2];
        stream.read_exact(&mut prefix).await.map_err(|e| e.to_string())?;
        let mut buffer = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
        stream.read_exact(&mut buffer).await.map_err(|e| e.to_string())?;
        let response = Message::from_vec(&buffer).map_err(|e| e.to_string())?;
        if response.metadata.id != request.metadata.id {
            return Err("an answer to another query over TCP".to_string());
        }
        Ok(response)
    })
    .await
    .map_err(|_| "no answer over TCP in time".to_string())?
}
