//! The metrics endpoint: plain HTTP/1.1 `GET /metrics` on port 8066 of the loopback and LAN addresses. One
//! request per connection; anything else gets a short error answer, and a client that sends nothing or too much
//! is cut off without holding anything up.

use std::{net::TcpListener as StdTcpListener, sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinSet,
};

use super::{collect::Collector, text::CONTENT_TYPE};
use crate::supervisor::{ServiceContext, ServiceError, ServiceState};

/// router7's metrics port.
pub const PORT: u16 = 8066;
const MAX_REQUEST_HEAD: usize = 8192;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Metrics,
    /// Another path: 404.
    NotFound,
    /// Another method: 405.
    MethodNotAllowed,
    /// Not an HTTP request line: 400.
    BadRequest,
}

/// Routes a request by its first line.
pub fn route(head: &[u8]) -> Route {
    let Some(line) = head.split(|b| *b == b'\n').next().and_then(|l| std::str::from_utf8(l).ok()) else {
        return Route::BadRequest;
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Route::BadRequest;
    }
    if method != "GET" && method != "HEAD" {
        return Route::MethodNotAllowed;
    }
    let path = target.split('?').next().unwrap_or(target);
    if path == "/metrics" { Route::Metrics } else { Route::NotFound }
}

pub async fn serve(
    listeners: Arc<Vec<StdTcpListener>>,
    collector: Collector,
    mut context: ServiceContext,
) -> Result<(), ServiceError> {
    let mut accepting = JoinSet::new();
    let mut addrs = Vec::new();
    // Scrapes in progress at once, and from one address: a scrape flood cannot pile up work.
    let limit = crate::limits::ConnectionLimit::new(16, 4);
    for listener in listeners.iter() {
        let listener = TcpListener::from_std(listener.try_clone()?)?;
        addrs.push(listener.local_addr()?.to_string());
        let collector = collector.clone();
        let limit = limit.clone();
        accepting.spawn(async move {
            loop {
                let (stream, from) = crate::limits::accept(&listener, "metrics").await;
                let Some(slot) = limit.try_acquire(from.ip()) else { continue };
                let collector = collector.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(REQUEST_TIMEOUT * 2, answer(stream, collector)).await;
                    drop(slot);
                });
            }
        });
    }
    tracing::info!("serving Prometheus metrics on {}", addrs.join(", "));
    context.report(ServiceState::Running, format!("http://{}/metrics", addrs.first().cloned().unwrap_or_default()));
    tokio::select! {
        _ = context.shutdown.wait() => Ok(()),
        Some(done) = accepting.join_next() => Err(format!("a metrics listener stopped: {done:?}").into()),
    }
}

async fn answer(mut stream: TcpStream, collector: Collector) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buffer = [0u8; 1024];
    let complete = tokio::time::timeout(REQUEST_TIMEOUT, async {
        loop {
            let len = stream.read(&mut buffer).await?;
            if len == 0 {
                return Ok::<bool, std::io::Error>(false);
            }
            head.extend_from_slice(&buffer[..len]);
            if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
                return Ok(true);
            }
            if head.len() > MAX_REQUEST_HEAD {
                return Ok(false);
            }
        }
    })
    .await
    .unwrap_or(Ok(false))?;
    let head_only = head.starts_with(b"HEAD ");
    let (status, body) = if !complete {
        ("400 Bad Request", "incomplete or oversized request\n".to_string())
    } else {
        match route(&head) {
            Route::Metrics => ("200 OK", collector.render().await),
            Route::NotFound => ("404 Not Found", "routerd serves only /metrics here\n".to_string()),
            Route::MethodNotAllowed => ("405 Method Not Allowed", "use GET\n".to_string()),
            Route::BadRequest => ("400 Bad Request", "not an HTTP/1 request\n".to_string()),
        }
    };
    let content_type = if status.starts_with("200") { CONTENT_TYPE } else { "text/plain; charset=utf-8" };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        response.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&response).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_routed_by_their_first_line() {
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), Route::Metrics);
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Route::Metrics);
        assert_eq!(route(b"HEAD /metrics HTTP/1.1\r\n\r\n"), Route::Metrics);
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"POST /metrics HTTP/1.1\r\n\r\n"), Route::MethodNotAllowed);
        for bad in [&b""[..], b"\xff\xfe", b"GET /metrics", b"GET /metrics HTTP/2 extra", b"GET metrics HTTP/1.1"] {
            assert_eq!(route(bad), Route::BadRequest, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
