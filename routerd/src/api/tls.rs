//! Mutual TLS for the API: the rustls server configuration (client certificates checked against the router's
//! CA and its revocation list) and an acceptor that runs handshakes concurrently with a timeout.

use std::{
    collections::BTreeSet,
    io,
    net::SocketAddr,
    path::PathBuf,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use rustls::{RootCertStore, ServerConfig, server::WebPkiClientVerifier};
use rustls_pki_types::CertificateDer;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

use super::sessions::{Session, Sessions};
use crate::{
    pki::{Authority, PkiError, ServerCredentials},
    supervisor::Shutdown,
};

/// How long a client may take for its handshake before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection without a client certificate (it may only pair) may stay silent before it is closed.
pub const UNAUTHENTICATED_IDLE: Duration = Duration::from_secs(5);

/// The client identity behind a connection, as the handshake proved it.
#[derive(Clone, Debug)]
pub struct ClientIdentity {
    /// Common name: the name the identity was issued under.
    pub name: String,
    /// Serial number, lower-case hex.
    pub serial: String,
}

/// Per-connection facts, available to every request as an extension.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    pub remote_addr: SocketAddr,
    /// `None` for a client without a certificate, which may only pair.
    pub client: Option<ClientIdentity>,
}

/// Builds the TLS configuration and rebuilds it as soon as the revocation list changes on disk (a revoke by
/// `routerd pki revoke` or through the API), so the next handshake already sees it.
pub struct TlsSource {
    authority: Arc<Authority>,
    credentials: ServerCredentials,
    revoked_path: PathBuf,
    cached: Mutex<Option<Cached>>,
}

struct Cached {
    stamp: Option<FileStamp>,
    config: Arc<ServerConfig>,
    revoked: Arc<BTreeSet<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileStamp {
    inode: u64,
    modified: Option<std::time::SystemTime>,
    len: u64,
}

pub(crate) fn stamp(path: &std::path::Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| FileStamp { inode: m.ino(), modified: m.modified().ok(), len: m.len() })
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("TLS client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

impl TlsSource {
    /// The CA certificate's file: when it changes (a rotation), every connection ends and routerd starts again.
    pub fn ca_path(&self) -> PathBuf {
        self.authority.paths().ca_cert()
    }

    pub fn new(authority: Arc<Authority>, credentials: ServerCredentials) -> TlsSource {
        let revoked_path = authority.paths().revoked();
        TlsSource { authority, credentials, revoked_path, cached: Mutex::new(None) }
    }

    /// The configuration for the next handshake and the serials revoked now.
    pub fn current(&self) -> Result<(Arc<ServerConfig>, Arc<BTreeSet<String>>), TlsError> {
        let now_stamp = stamp(&self.revoked_path);
        let mut cached = self.cached.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(c) = cached.as_ref()
            && c.stamp == now_stamp
        {
            return Ok((c.config.clone(), c.revoked.clone()));
        }
        let revoked = Arc::new(self.authority.revoked_serials()?);
        let config = Arc::new(self.build_config()?);
        if cached.is_some() {
            tracing::info!("revocation list changed: {} revoked in all", revoked.len());
        }
        *cached = Some(Cached { stamp: now_stamp, config: config.clone(), revoked: revoked.clone() });
        Ok((config, revoked))
    }

    /// The serials revoked now (for connections that were established before a revoke).
    pub fn revoked(&self) -> Arc<BTreeSet<String>> {
        match self.current() {
            Ok((_, revoked)) => revoked,
            Err(error) => {
                tracing::error!("cannot read the revocation list: {error}");
                self.cached
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .as_ref()
                    .map(|c| c.revoked.clone())
                    .unwrap_or_default()
            }
        }
    }

    fn build_config(&self) -> Result<ServerConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots.add(self.authority.ca_der().clone())?;
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .with_crls(vec![self.authority.current_crl()?])
            .only_check_end_entity_revocation()
            // Clients without a certificate get through the handshake but may only call PkiService.Pair.
            .allow_unauthenticated()
            .build()?;
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.credentials.chain.clone(), self.credentials.key.clone_key())?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }
}

/// Accepts TCP connections on `listener`, runs each TLS handshake in its own task (bounded by
/// [`HANDSHAKE_TIMEOUT`], and in number by [`Sessions::start_handshake`]) and passes established connections
/// to `established`.
pub async fn accept_loop(
    listener: TcpListener,
    source: Arc<TlsSource>,
    sessions: Arc<Sessions>,
    established: mpsc::Sender<io::Result<TlsConnection>>,
    mut shutdown: Shutdown,
) -> io::Result<()> {
    let mut refused = 0u64;
    loop {
        let (tcp, remote_addr) = tokio::select! {
            accepted = crate::limits::accept(&listener, "the API") => accepted,
            _ = shutdown.wait() => return Ok(()),
        };
        let Some(slot) = sessions.start_handshake(remote_addr.ip()) else {
            refused += 1;
            // Said once in a while, not for every connection of a flood.
            if refused.is_power_of_two() {
                tracing::warn!("too many TLS handshakes in progress: refused {remote_addr} ({refused} refused so far)");
            }
            continue;
        };
        let config = match source.current() {
            Ok((config, _)) => config,
            Err(error) => {
                tracing::error!("refusing {remote_addr}: {error}");
                continue;
            }
        };
        let (established, sessions) = (established.clone(), sessions.clone());
        tokio::spawn(async move {
            let result = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(tcp, remote_addr, config, &sessions)).await;
            drop(slot);
            match result {
                Ok(Ok(connection)) => {
                    let _ = established.send(Ok(connection)).await;
                }
                Ok(Err(error)) => tracing::info!("TLS handshake with {remote_addr} failed: {error}"),
                Err(_) => tracing::info!("TLS handshake with {remote_addr} timed out"),
            }
        });
    }
}

async fn handshake(
    tcp: TcpStream,
    remote_addr: SocketAddr,
    config: Arc<ServerConfig>,
    sessions: &Arc<Sessions>,
) -> io::Result<TlsConnection> {
    let _ = tcp.set_nodelay(true);
    let stream = TlsAcceptor::from(config).accept(tcp).await?;
    let client = stream.get_ref().1.peer_certificates().and_then(|chain| chain.first()).and_then(client_identity);
    match &client {
        Some(id) => tracing::debug!("{remote_addr}: client {:?} (serial {})", id.name, id.serial),
        None => tracing::debug!("{remote_addr}: client without certificate (pairing only)"),
    }
    let session = sessions.register(client.as_ref().map(|c| c.serial.clone()), remote_addr);
    let idle = client.is_none().then(|| Box::pin(tokio::time::sleep(UNAUTHENTICATED_IDLE)));
    Ok(TlsConnection { stream, info: ConnectionInfo { remote_addr, client }, session, idle })
}

fn client_identity(cert: &CertificateDer<'_>) -> Option<ClientIdentity> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    let name =
        parsed.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).unwrap_or_default().to_string();
    Some(ClientIdentity { name, serial: data_encoding::HEXLOWER.encode(parsed.raw_serial()) })
}

/// An established TLS connection plus what the handshake proved about the client. It ends (reads and writes
/// fail) when the router closes its session, and, without a client certificate, after [`UNAUTHENTICATED_IDLE`]
/// without a byte from the client.
pub struct TlsConnection {
    stream: TlsStream<TcpStream>,
    info: ConnectionInfo,
    session: Session,
    idle: Option<Pin<Box<tokio::time::Sleep>>>,
}

fn closed_by_router() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "closed by the router (identity revoked or CA replaced)")
}

impl tonic::transport::server::Connected for TlsConnection {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> ConnectionInfo {
        self.info.clone()
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.session.poll_closed(cx) {
            return Poll::Ready(Err(closed_by_router()));
        }
        if let Some(idle) = self.idle.as_mut()
            && idle.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "idle without a client certificate: closed",
            )));
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(())))
            && buf.filled().len() > before
            && let Some(idle) = self.idle.as_mut()
        {
            idle.as_mut().reset(tokio::time::Instant::now() + UNAUTHENTICATED_IDLE);
        }
        result
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.session.is_closed() {
            return Poll::Ready(Err(closed_by_router()));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.session.is_closed() {
            return Poll::Ready(Err(closed_by_router()));
        }
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
