//! The API service: TLS listeners feeding one tonic server with every router.v1 service, the gRPC health
//! service and server reflection, all behind [`AuthorizeLayer`].

use std::{net::TcpListener as StdTcpListener, sync::Arc};

use routerd_proto::v1::{
    backup_service_server::BackupServiceServer, capture_service_server::CaptureServiceServer,
    diagnostics_service_server::DiagnosticsServiceServer, lease_service_server::LeaseServiceServer,
    pki_service_server::PkiServiceServer, port_forward_service_server::PortForwardServiceServer,
    system_service_server::SystemServiceServer, update_service_server::UpdateServiceServer,
};
use tokio::{net::TcpListener, sync::mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::{
    authorize::AuthorizeLayer,
    backup, capture, diagnostics,
    lease::{LeaseApi, LeaseView},
    pki::PkiApi,
    port_forward::PortForwardApi,
    sessions::Sessions,
    system::{SystemApi, SystemView},
    tls::{TlsSource, accept_loop},
    update,
};
use crate::{pki::Authority, supervisor::ServiceContext};

/// How long open streams get to finish when routerd stops.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("listener {addr}: {source}")]
    Listener { addr: String, source: std::io::Error },
    #[error("server reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Everything the API serves from.
#[derive(Clone)]
pub struct ApiContext {
    pub authority: Arc<Authority>,
    pub tls: Arc<TlsSource>,
    pub system: SystemView,
    pub leases: LeaseView,
    /// `None` when this router has no firewall (no uplink or no LAN).
    pub forwards: Option<crate::firewall::service::ForwardControl>,
    /// `None` when nothing is captured (no uplink).
    pub capture: Option<crate::capture::service::CaptureHub>,
    pub diagnostics: crate::diag::Diagnostics,
    pub perm: std::path::PathBuf,
    pub restarter: crate::restart::Restarter,
    /// How long a new version has when the request does not say.
    pub update_confirm_window: std::time::Duration,
    /// Bound once at start; each (re)start of the service serves on clones of them.
    pub listeners: Arc<Vec<StdTcpListener>>,
}

/// Serves the API until shutdown.
pub async fn serve(api: ApiContext, context: ServiceContext) -> Result<(), ApiError> {
    let (established_tx, established_rx) = mpsc::channel(64);
    let sessions = Arc::new(Sessions::default());
    let mut accept_tasks = tokio::task::JoinSet::new();
    for listener in api.listeners.iter() {
        let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let listener = listener
            .try_clone()
            .and_then(TcpListener::from_std)
            .map_err(|source| ApiError::Listener { addr: addr.clone(), source })?;
        tracing::info!("serving gRPC with mutual TLS on {addr}");
        accept_tasks.spawn(accept_loop(
            listener,
            api.tls.clone(),
            sessions.clone(),
            established_tx.clone(),
            context.shutdown.clone(),
        ));
    }
    drop(established_tx);
    let watcher = tokio::spawn(watch_identities(
        api.tls.clone(),
        sessions.clone(),
        api.restarter.clone(),
        context.shutdown.clone(),
    ));

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<SystemServiceServer<SystemApi>>().await;
    health_reporter.set_serving::<PkiServiceServer<PkiApi>>().await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(routerd_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(routerd_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let mut shutdown = context.shutdown.clone();
    let mut grace_over = context.shutdown.clone();
    let server = tonic::transport::Server::builder()
        .layer(AuthorizeLayer::new(api.tls.clone()))
        .add_service(SystemServiceServer::new(SystemApi::new(api.system.clone())))
        .add_service(PkiServiceServer::new(PkiApi::new(api.authority.clone())))
        .add_service(LeaseServiceServer::new(LeaseApi::new(api.leases.clone())))
        .add_service(PortForwardServiceServer::new(PortForwardApi::new(api.forwards.clone())))
        .add_service(DiagnosticsServiceServer::new(diagnostics::DiagnosticsApi::new(api.diagnostics.clone())))
        .add_service(CaptureServiceServer::new(capture::CaptureApi::new(api.capture.clone())))
        .add_service(BackupServiceServer::new(backup::BackupApi::new(
            api.perm.clone(),
            api.restarter.clone(),
            api.diagnostics.clone(),
            api.update_confirm_window,
            api.leases.control.clone(),
        )))
        .add_service(UpdateServiceServer::new(update::UpdateApi::new(
            api.perm.clone(),
            api.restarter.clone(),
            api.diagnostics.clone(),
            api.update_confirm_window,
        )))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(ReceiverStream::new(established_rx), async move { shutdown.wait().await });
    // A graceful shutdown waits for open streams (a capture, a lease watch) to end, which they never do by
    // themselves: they get a moment to finish, then they are cut, so a restart is not held up by a client.
    tokio::select! {
        served = server => served?,
        _ = async move {
            grace_over.wait().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => tracing::info!("closed the API's open streams after {} ms", SHUTDOWN_GRACE.as_millis()),
    }
    accept_tasks.shutdown().await;
    watcher.abort();
    Ok(())
}

/// How often the revocation list and the CA certificate are looked at (a `stat` each).
const IDENTITY_CHECK: std::time::Duration = std::time::Duration::from_millis(250);

/// Ends what revocation and rotation took away: a revoked identity's open connections (and their streams) are
/// closed within [`IDENTITY_CHECK`] of the revoke, whoever made it (`routerd pki revoke` or the API); a new CA
/// (`routerd pki rotate-ca`) closes every connection and starts routerd again with it.
async fn watch_identities(
    tls: Arc<TlsSource>,
    sessions: Arc<Sessions>,
    restarter: crate::restart::Restarter,
    mut shutdown: crate::supervisor::Shutdown,
) {
    let ca_path = tls.ca_path();
    let ca_at_start = super::tls::stamp(&ca_path);
    let mut tick = tokio::time::interval(IDENTITY_CHECK);
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tick.tick() => {}
        }
        let closed = sessions.close_revoked(&tls.revoked());
        if closed > 0 {
            tracing::info!("closed {closed} connection(s) of revoked identities");
        }
        if super::tls::stamp(&ca_path) != ca_at_start {
            let closed = sessions.close_all();
            tracing::warn!(
                "the router's CA was replaced (routerd pki rotate-ca): closed {closed} connection(s); starting again"
            );
            restarter.request_after(std::time::Duration::from_millis(100));
            return;
        }
    }
}
