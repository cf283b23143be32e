//! The metrics endpoint: HTTP/1.1 `GET /metrics` on port 8066 of the loopback and LAN addresses, served by hyper
//! (already in the tree through tonic). One request per connection; anything else gets a short error answer
//! (hyper answers what is not HTTP with 400), and a client that sends nothing or too much is cut off without
//! holding anything up: bounded connections overall and per address, a header timeout, a cap on the whole
//! exchange.

use std::{convert::Infallible, net::TcpListener as StdTcpListener, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, task::JoinSet};

use super::{collect::Collector, text::CONTENT_TYPE};
use crate::supervisor::{ServiceContext, ServiceError, ServiceState};

/// router7's metrics port.
pub(crate) const PORT: u16 = 8066;
/// hyper's smallest read buffer, so the largest request head it takes.
const MAX_REQUEST_HEAD: usize = 8192;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Metrics,
    /// Another path: 404.
    NotFound,
    /// Another method: 405.
    MethodNotAllowed,
}

/// Routes a request by its method and path (the query is ignored).
pub(crate) fn route(method: &Method, path: &str) -> Route {
    if method != Method::GET && method != Method::HEAD {
        Route::MethodNotAllowed
    } else if path == "/metrics" {
        Route::Metrics
    } else {
        Route::NotFound
    }
}

pub(crate) async fn serve(
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
                    let service = hyper::service::service_fn(move |request| {
                        let collector = collector.clone();
                        async move { Ok::<_, Infallible>(answer(request, &collector).await) }
                    });
                    let connection = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(REQUEST_TIMEOUT)
                        .max_buf_size(MAX_REQUEST_HEAD)
                        .keep_alive(false)
                        .serve_connection(TokioIo::new(stream), service);
                    // A connection that fails (garbage, a timeout, a reset) fails only itself.
                    let _ = tokio::time::timeout(REQUEST_TIMEOUT * 2, connection).await;
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

async fn answer<B>(request: Request<B>, collector: &Collector) -> Response<Full<Bytes>> {
    // hyper leaves out the body of an answer to HEAD and keeps its length.
    let (status, body) = match route(request.method(), request.uri().path()) {
        Route::Metrics => (StatusCode::OK, collector.render().await),
        Route::NotFound => (StatusCode::NOT_FOUND, "routerd serves only /metrics here\n".to_string()),
        Route::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "use GET\n".to_string()),
    };
    let content_type = if status == StatusCode::OK { CONTENT_TYPE } else { "text/plain; charset=utf-8" };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_routed_by_method_and_path() {
        assert_eq!(route(&Method::GET, "/metrics"), Route::Metrics);
        assert_eq!(route(&Method::HEAD, "/metrics"), Route::Metrics);
        assert_eq!(route(&Method::GET, "/"), Route::NotFound);
        assert_eq!(route(&Method::GET, "/metrics/"), Route::NotFound);
        assert_eq!(route(&Method::POST, "/metrics"), Route::MethodNotAllowed);
        assert_eq!(route(&Method::PUT, "/"), Route::MethodNotAllowed);
    }
}
