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

/// A network boot serves one router; a few more connections are allowed for retries.
const MAX_CONNECTIONS: usize = 16;

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
    loop {
        let (stream, peer) = listener.accept().await?;
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!("HTTP: {peer}: too many connections, closed");
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
            if let Err(error) = connection.await {
                tracing::debug!("HTTP: {peer}: {error}");
            }
            drop(permit);
        });
    }
}
