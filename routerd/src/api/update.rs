//! UpdateService: upload (staged once its SHA-256 matches), activate (the keeper starts the new binary on
//! trial), confirm or roll back, and the status of it all. One update at a time.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, SystemTime},
};

use routerd_proto::{
    CONFIRM_WINDOW_SECONDS,
    v1::{self as pb, update_service_server::UpdateService},
};
use tokio_stream::StreamExt;

use crate::{
    diag::Diagnostics,
    restart::Restarter,
    update::{
        self,
        staging::{Announced, Upload, UploadError},
        state::UpdateState,
    },
};

/// How long a new version has to report healthy unless the request says otherwise.
pub const DEFAULT_CONFIRM_WINDOW: Duration = Duration::from_secs(120);

pub struct UpdateApi {
    perm: PathBuf,
    /// routerd.json `update_confirm_window_seconds`, else [`DEFAULT_CONFIRM_WINDOW`].
    default_window: Duration,
    restarter: Restarter,
    diagnostics: Diagnostics,
    /// Held for the whole of an upload, and while the state changes: one update at a time.
    busy: Arc<tokio::sync::Mutex<()>>,
}

impl UpdateApi {
    pub fn new(perm: PathBuf, restarter: Restarter, diagnostics: Diagnostics, default_window: Duration) -> Self {
        UpdateApi { perm, default_window, restarter, diagnostics, busy: Arc::new(tokio::sync::Mutex::new(())) }
    }

    fn load(&self) -> Result<UpdateState, tonic::Status> {
        UpdateState::load(&self.perm).map_err(|e| tonic::Status::internal(e.to_string()))
    }

    fn save(&self, state: &UpdateState) -> Result<(), tonic::Status> {
        state.save(&self.perm).map_err(|e| tonic::Status::internal(e.to_string()))
    }

    fn busy(&self) -> Result<tokio::sync::MutexGuard<'_, ()>, tonic::Status> {
        self.busy.try_lock().map_err(|_| tonic::Status::aborted("another update is in progress; one at a time"))
    }
}

fn upload_status(error: UploadError) -> tonic::Status {
    match error {
        UploadError::Io(message) => tonic::Status::internal(message),
        other => tonic::Status::invalid_argument(other.to_string()),
    }
}

fn state_status(error: update::state::TransitionError) -> tonic::Status {
    tonic::Status::failed_precondition(error.to_string())
}

fn needs_keeper() -> Result<(), tonic::Status> {
    if update::has_keeper() {
        Ok(())
    } else {
        Err(tonic::Status::failed_precondition(
            "routerd runs without its keeper (started as `routerd serve`), so nothing could roll an update back; \
             start it with `routerd run`",
        ))
    }
}

#[tonic::async_trait]
impl UpdateService for UpdateApi {
    async fn upload_update(
        &self,
        request: tonic::Request<tonic::Streaming<pb::UploadUpdateRequest>>,
    ) -> Result<tonic::Response<pb::UploadUpdateResponse>, tonic::Status> {
        let _one = self.busy()?;
        if let Some(trial) = self.load()?.trial {
            return Err(tonic::Status::failed_precondition(format!(
                "version {} is on trial; wait for it to be confirmed or rolled back",
                trial.artifact.version
            )));
        }
        let mut stream = request.into_inner();
        let header = match stream.next().await {
            Some(Ok(pb::UploadUpdateRequest { content: Some(pb::upload_update_request::Content::Header(header)) })) => {
                header
            }
            Some(Err(status)) => return Err(status),
            _ => return Err(tonic::Status::invalid_argument("the first message must be the header")),
        };
        let system = match pb::ArtifactKind::try_from(header.kind) {
            Ok(pb::ArtifactKind::DaemonBinary) => false,
            Ok(pb::ArtifactKind::SystemImage) => {
                super::update_system::needs_appliance()?;
                true
            }
            _ => return Err(tonic::Status::invalid_argument("kind: say ARTIFACT_KIND_DAEMON_BINARY or _SYSTEM_IMAGE")),
        };
        let announced =
            Announced { version: header.version, size: header.size, sha256: header.sha256.to_ascii_lowercase() };
        let mut upload = Upload::begin(&self.perm, announced).map_err(upload_status)?;
        while let Some(message) = stream.next().await {
            // A broken stream drops `upload`, which removes the partial file: nothing is staged.
            match message?.content {
                Some(pb::upload_update_request::Content::Chunk(chunk)) => {
                    upload.write(&chunk).map_err(upload_status)?
                }
                _ => return Err(tonic::Status::invalid_argument("only chunks may follow the header")),
            }
        }
        if system {
            let path = update::system::state::SystemState::staged_bundle(&self.perm);
            tokio::task::block_in_place(|| upload.finish_file(&path)).map_err(upload_status)?;
            let version = tokio::task::block_in_place(|| super::update_system::stage(&self.perm, &path))?;
            return Ok(tonic::Response::new(pb::UploadUpdateResponse { staged_version: version }));
        }
        let artifact = tokio::task::block_in_place(|| upload.finish()).map_err(upload_status)?;
        let mut state = self.load()?;
        state.stage(artifact.clone()).map_err(state_status)?;
        self.save(&state)?;
        tracing::info!("update staged: {} (sha256 {})", artifact.version, artifact.sha256);
        Ok(tonic::Response::new(pb::UploadUpdateResponse { staged_version: artifact.version }))
    }

    async fn activate_update(
        &self,
        request: tonic::Request<pb::ActivateUpdateRequest>,
    ) -> Result<tonic::Response<pb::ActivateUpdateResponse>, tonic::Status> {
        let _one = self.busy()?;
        let window = match request.into_inner().confirm_window {
            None => self.default_window,
            Some(d) if u64::try_from(d.seconds).is_ok_and(|s| CONFIRM_WINDOW_SECONDS.contains(&s)) => {
                Duration::from_secs(d.seconds.unsigned_abs())
            }
            Some(d) => {
                let (low, high) = (CONFIRM_WINDOW_SECONDS.start(), CONFIRM_WINDOW_SECONDS.end());
                return Err(tonic::Status::invalid_argument(format!(
                    "confirm_window: {} s is outside {low}–{high} s",
                    d.seconds
                )));
            }
        };
        let system =
            update::system::state::SystemState::load(&self.perm).map_err(|e| tonic::Status::internal(e.to_string()))?;
        if system.staged.is_some() {
            let report = self.diagnostics.evaluate(|_| {}).await;
            let baseline: Vec<String> = report.failed().map(|n| n.id.clone()).collect();
            let perm = self.perm.clone();
            tokio::task::block_in_place(|| super::update_system::activate(&perm, window, baseline))?;
            return Ok(tonic::Response::new(pb::ActivateUpdateResponse {}));
        }
        needs_keeper()?;
        let mut state = self.load()?;
        if state.staged.is_none() {
            return Err(state_status(update::state::TransitionError::NothingStaged));
        }
        // What fails already is not held against the new version.
        let report = self.diagnostics.evaluate(|_| {}).await;
        let baseline: Vec<String> = report.failed().map(|n| n.id.clone()).collect();
        state.activate(SystemTime::now(), window, baseline, update::running_version()).map_err(state_status)?;
        self.save(&state)?;
        let version = state.trial.as_ref().map(|t| t.artifact.version.clone()).unwrap_or_default();
        tracing::warn!("activating update {version}: it must report healthy within {} s", window.as_secs());
        self.restarter.request_after(Duration::from_millis(300));
        Ok(tonic::Response::new(pb::ActivateUpdateResponse {}))
    }

    async fn confirm_update(
        &self,
        _request: tonic::Request<pb::ConfirmUpdateRequest>,
    ) -> Result<tonic::Response<pb::ConfirmUpdateResponse>, tonic::Status> {
        let _one = self.busy()?;
        let version = update::trial::confirm(&self.perm).map_err(tonic::Status::failed_precondition)?;
        tracing::info!("update {version} confirmed by request");
        Ok(tonic::Response::new(pb::ConfirmUpdateResponse {}))
    }

    async fn rollback_update(
        &self,
        _request: tonic::Request<pb::RollbackUpdateRequest>,
    ) -> Result<tonic::Response<pb::RollbackUpdateResponse>, tonic::Status> {
        let _one = self.busy()?;
        if let Some(version) = super::update_system::roll_back(&self.perm)? {
            return Ok(tonic::Response::new(pb::RollbackUpdateResponse { version }));
        }
        needs_keeper()?;
        let mut state = self.load()?;
        let version = state.revert().map_err(state_status)?;
        self.save(&state)?;
        tracing::warn!("rolling back to {version} on request");
        self.restarter.request_after(Duration::from_millis(300));
        Ok(tonic::Response::new(pb::RollbackUpdateResponse { version }))
    }

    async fn get_update_status(
        &self,
        _request: tonic::Request<pb::GetUpdateStatusRequest>,
    ) -> Result<tonic::Response<pb::GetUpdateStatusResponse>, tonic::Status> {
        let state = self.load()?;
        let system = update::system::state::SystemState::load(&self.perm).unwrap_or_default();
        let uploading = self.busy.try_lock().is_err();
        if let Some(running) = update::system::running_system() {
            // The appliance: the system's version and updates, with the daemon's beside them.
            let phase = if system.trial.is_some() {
                pb::UpdatePhase::Trial
            } else if uploading {
                pb::UpdatePhase::Uploading
            } else if system.staged.is_some() || state.staged.is_some() {
                pb::UpdatePhase::Staged
            } else if system.last_rollback_reason.is_some() || state.last_rollback_reason.is_some() {
                pb::UpdatePhase::RolledBack
            } else {
                pb::UpdatePhase::Idle
            };
            return Ok(tonic::Response::new(pb::GetUpdateStatusResponse {
                phase: phase as i32,
                running_version: format!("{} (system {running})", update::running_version()),
                previous_version: system.previous.as_ref().map(|p| p.version.clone()).unwrap_or_default(),
                staged_version: system
                    .staged
                    .clone()
                    .or(system.trial.as_ref().map(|t| t.version.clone()))
                    .unwrap_or_default(),
                trial_deadline: None,
                last_rollback_reason: system.last_rollback_reason.or(state.last_rollback_reason).unwrap_or_default(),
            }));
        }
        let phase = if state.trial.is_some() {
            pb::UpdatePhase::Trial
        } else if uploading {
            pb::UpdatePhase::Uploading
        } else if state.staged.is_some() {
            pb::UpdatePhase::Staged
        } else if state.last_rollback_reason.is_some() {
            pb::UpdatePhase::RolledBack
        } else {
            pb::UpdatePhase::Idle
        };
        Ok(tonic::Response::new(pb::GetUpdateStatusResponse {
            phase: phase as i32,
            running_version: update::running_version(),
            previous_version: state.previous_version.clone().unwrap_or_default(),
            staged_version: state
                .staged
                .as_ref()
                .or(state.trial.as_ref().map(|t| &t.artifact))
                .map(|a| a.version.clone())
                .unwrap_or_default(),
            trial_deadline: state
                .trial
                .as_ref()
                .map(|t| prost_types::Timestamp { seconds: t.deadline as i64, nanos: 0 }),
            last_rollback_reason: state.last_rollback_reason.clone().unwrap_or_default(),
        }))
    }
}
