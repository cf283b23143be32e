//! HTTP for the installer: the manifest, the image and the backup, streamed from their files, and the reports it
//! posts, passed on to the progress display. hyper (HTTP/1.1) with bounded connections, header time and body
//! sizes.

use std::{convert::Infallible, path::PathBuf, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::mpsc};
use tokio_stream::StreamExt;

use crate::protocol::{self, Report};

/// A network boot serves one router; a few more connections are allowed for retries. One address may hold only
/// a few, so another device on that network cannot take every slot (each also closes after 10 s without a
/// request head).
const MAX_CONNECTIONS: usize = 16;
const MAX_PER_ADDRESS: usize = 4;

/// Connections open per address; entries go when their last connection does.
#[derive(Default)]
struct PerAddress(std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>);

impl PerAddress {
    fn take(self: &Arc<Self>, address: std::net::IpAddr) -> Option<AddressSlot> {
        let mut open = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(address).or_default();
        if *count >= MAX_PER_ADDRESS {
            return None;
        }
        *count += 1;
        Some(AddressSlot { table: self.clone(), address })
    }
}

struct AddressSlot {
    table: Arc<PerAddress>,
    address: std::net::IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.table.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

pub struct Files {
    /// This run's token; requests without it are refused.
    pub session: String,
    pub manifest: Vec<u8>,
    pub image: PathBuf,
    pub backup: Option<PathBuf>,
}

type Body = BoxBody<Bytes, std::io::Error>;

fn text(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    let body = Full::new(Bytes::from(message.into() + "\n")).map_err(|never: Infallible| match never {}).boxed();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
}

async fn file(path: &PathBuf, content_type: &str) -> Response<Body> {
    let opened = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(error) => return text(StatusCode::INTERNAL_SERVER_ERROR, format!("opening {}: {error}", path.display())),
    };
    let length = match opened.metadata().await {
        Ok(metadata) => metadata.len(),
        Err(error) => return text(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    };
    let stream = tokio_util::io::ReaderStream::with_capacity(opened, 1 << 16).map(|chunk| chunk.map(Frame::data));
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    response.headers_mut().insert(header::CONTENT_LENGTH, length.into());
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

async fn handle(request: Request<Incoming>, files: Arc<Files>, reports: mpsc::Sender<Report>) -> Response<Body> {
    let session = request.headers().get(protocol::SESSION_HEADER).and_then(|v| v.to_str().ok());
    if session != Some(files.session.as_str()) {
        return text(
            StatusCode::FORBIDDEN,
            "this installer was booted by another run of routerd-recover: restart the router's network boot",
        );
    }
    match (request.method(), request.uri().path()) {
        (&Method::GET, protocol::MANIFEST_PATH) => {
            let mut response = text(StatusCode::OK, String::from_utf8_lossy(&files.manifest));
            response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
            response
        }
        (&Method::GET, protocol::IMAGE_PATH) => file(&files.image, "application/octet-stream").await,
        (&Method::GET, protocol::BACKUP_PATH) => match &files.backup {
            Some(backup) => file(backup, "application/gzip").await,
            None => text(StatusCode::NOT_FOUND, "no backup: routerd-recover was started without --backup"),
        },
        (&Method::POST, protocol::REPORT_PATH) => {
            let body = match Limited::new(request.into_body(), protocol::MAX_REPORT).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(error) => return text(StatusCode::PAYLOAD_TOO_LARGE, format!("the report: {error}")),
            };
            match serde_json::from_slice::<Report>(&body) {
                Ok(report) => {
                    let _ = reports.send(report).await;
                    text(StatusCode::OK, "ok")
                }
                Err(error) => text(StatusCode::BAD_REQUEST, format!("not a report: {error}")),
            }
        }
        (_, path) => text(StatusCode::NOT_FOUND, format!("nothing at {path}")),
    }
}

/// Serves until the listener fails.
pub async fn serve(listener: TcpListener, files: Arc<Files>, reports: mpsc::Sender<Report>) -> std::io::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let per_address = Arc::new(PerAddress::default());
    loop {
        let (stream, peer) = listener.accept().await?;
        let Some(address_slot) = per_address.take(peer.ip()) else {
            eprintln!("HTTP: {peer}: more than {MAX_PER_ADDRESS} connections from one address, closed");
            continue;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            eprintln!("HTTP: {peer}: too many connections, closed");
            continue;
        };
        let (files, reports) = (files.clone(), reports.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let (files, reports) = (files.clone(), reports.clone());
                async move { Ok::<_, Infallible>(handle(request, files, reports).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            // A connection that fails (a timeout, a reset) fails only itself; the installer retries.
            let _ = connection.await;
            drop((permit, address_slot));
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_holds_at_most_a_few_connections_and_its_entry_goes_with_them() {
        let table = Arc::new(PerAddress::default());
        let (one, two): (std::net::IpAddr, std::net::IpAddr) =
            ("192.0.2.12".parse().unwrap(), "192.0.2.13".parse().unwrap());
        let held: Vec<AddressSlot> = (0..MAX_PER_ADDRESS).filter_map(|_| table.take(one)).collect();
        assert_eq!(held.len(), MAX_PER_ADDRESS);
        assert!(table.take(one).is_none(), "one address past its share");
        assert!(table.take(two).is_some(), "another address is still served");
        drop(held);
        assert!(table.take(one).is_some());
        assert!(table.0.lock().unwrap().is_empty(), "entries go with their last connection");
    }
}
