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
pub(crate) enum UpstreamError {
    #[error("no upstream DNS server is known (no lease from the ISP yet, and none in routerd.json)")]
    NoServers,
    #[error("no upstream DNS server answered: {0}")]
    AllFailed(String),
}

/// Resolves `query` through `servers`, in order.
pub(crate) async fn resolve(servers: &[SocketAddr], query: &Query) -> Result<Message, UpstreamError> {
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

/// `name` with the case of each letter chosen at random (DNS 0x20, draft-vixie-dnsext-dns0x20): an answer must
/// carry the question back exactly, so a blind spoofer has to guess these bits on top of the ID and the port.
fn randomize_case(name: &str, entropy: &mut dyn Entropy) -> String {
    let mut bits = 0u32;
    let mut left = 0;
    name.chars()
        .map(|c| {
            if !c.is_ascii_alphabetic() {
                return c;
            }
            if left == 0 {
                bits = entropy.next_u32();
                left = 32;
            }
            left -= 1;
            let upper = bits & 1 == 1;
            bits >>= 1;
            if upper { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() }
        })
        .collect()
}

/// Whether `answered` is exactly the question asked: one question, the same type and class, and the name with
/// every letter in the same case (hickory compares names without case; 0x20 needs the case).
fn same_question(asked: &Query, answered: &[Query]) -> bool {
    matches!(answered, [one] if one.query_type() == asked.query_type()
        && one.query_class() == asked.query_class()
        && one.name().to_ascii() == asked.name().to_ascii())
}

async fn ask(server: SocketAddr, query: &Query) -> Result<Message, String> {
    let mut entropy = SystemEntropy::default();
    let mut request = Message::query();
    request.metadata.id = entropy.next_u32() as u16;
    request.metadata.recursion_desired = true;
    let mixed = hickory_proto::rr::Name::from_ascii(randomize_case(&query.name().to_ascii(), &mut entropy))
        .map_err(|e| e.to_string())?;
    let mut asked = query.clone();
    asked.set_name(mixed);
    request.add_query(asked.clone());
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
                && same_question(&asked, &response.queries)
            {
                return Ok::<Message, String>(response);
            }
        }
    })
    .await
    .map_err(|_| format!("no answer within {} s", TIMEOUT.as_secs()))??;
    let mut response =
        if response.metadata.truncation { ask_tcp(server, &request, &asked, &bytes).await? } else { response };
    // The client gets its question back as it asked it.
    response.queries = vec![query.clone()];
    Ok(response)
}

async fn ask_tcp(server: SocketAddr, request: &Message, asked: &Query, bytes: &[u8]) -> Result<Message, String> {
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
        if response.metadata.id != request.metadata.id || !same_question(asked, &response.queries) {
            return Err("an answer to another query over TCP".to_string());
        }
        Ok(response)
    })
    .await
    .map_err(|_| "no answer over TCP in time".to_string())?
}

#[cfg(test)]
mod tests {
    use hickory_proto::rr::{Name, RecordType};

    use super::*;
    use crate::uplink::entropy::Sequence;

    /// As a name arrives on the wire: its case kept (`from_str` would lower-case it).
    fn query(name: &str) -> Query {
        Query::query(Name::from_ascii(name).expect("name"), RecordType::A)
    }

    #[test]
    fn letters_get_random_case_and_only_the_exact_question_is_accepted() {
        let mixed = randomize_case("www.example.org.", &mut Sequence::new(vec![0b1010_1010_1010_1010]));
        assert_eq!(mixed.to_ascii_lowercase(), "www.example.org.");
        assert_eq!(mixed, "wWw.ExAmPlE.oRg.", "one bit per letter");
        let asked = query(&mixed);
        assert!(same_question(&asked, &[query(&mixed)]));
        assert!(!same_question(&asked, &[query("www.example.org.")]), "the case must come back as sent");
        assert!(!same_question(&asked, &[query("www.example.net.")]));
        assert!(!same_question(&asked, &[]));
        assert!(!same_question(&asked, &[query(&mixed), query(&mixed)]));
        let mut aaaa = query(&mixed);
        aaaa.set_query_type(RecordType::AAAA);
        assert!(!same_question(&asked, &[aaaa]));
    }
}
