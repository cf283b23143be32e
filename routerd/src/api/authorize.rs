//! Only authenticated clients reach the API. A client without a certificate may call `PkiService.Pair` and
//! nothing else; a certificate revoked while its connection is open is refused from its next request on.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tonic::body::Body;

use super::tls::{ConnectionInfo, TlsSource};

/// The only method reachable without a client identity.
pub const PAIR_PATH: &str = "/router.v1.PkiService/Pair";

#[derive(Clone)]
pub struct AuthorizeLayer {
    source: Arc<TlsSource>,
}

impl AuthorizeLayer {
    pub fn new(source: Arc<TlsSource>) -> Self {
        AuthorizeLayer { source }
    }
}

impl<S> tower::Layer<S> for AuthorizeLayer {
    type Service = Authorize<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authorize { inner, source: self.source.clone() }
    }
}

#[derive(Clone)]
pub struct Authorize<S> {
    inner: S,
    source: Arc<TlsSource>,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S> tower::Service<http::Request<Body>> for Authorize<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        match self.check(&request) {
            Ok(()) => Box::pin(self.inner.call(request)),
            Err(status) => {
                let response = status.into_http();
                Box::pin(async move { Ok(response) })
            }
        }
    }
}

impl<S> Authorize<S> {
    fn check(&self, request: &http::Request<Body>) -> Result<(), tonic::Status> {
        if request.uri().path() == PAIR_PATH {
            return Ok(());
        }
        let info = request.extensions().get::<ConnectionInfo>();
        match info.and_then(|info| info.client.as_ref()) {
            Some(client) if self.source.revoked().contains(&client.serial) => {
                Err(tonic::Status::unauthenticated(format!("the identity {:?} was revoked", client.name)))
            }
            Some(_) => Ok(()),
            None => Err(tonic::Status::unauthenticated(
                "this router requires a client identity: pair with `rtrctl pair --router HOST --code CODE`",
            )),
        }
    }
}
