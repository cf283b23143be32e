//! BackupService: a tar.gz of `--perm` streamed out with its SHA-256, and a restore that checks the whole
//! archive before anything is replaced, then restarts routerd so the restored configuration applies.

use std::{path::PathBuf, sync::Arc, time::Duration};

use routerd_proto::v1::{self as pb, backup_service_server::BackupService};
use tokio_stream::StreamExt;

use crate::{
    backup::{Limits, archive, restore},
    lan::dhcp4d::commands::LeaseCommand,
    restart::Restarter,
};

const CHUNK: usize = 64 * 1024;
/// Largest archive a restore accepts.
pub(super) const MAX_ARCHIVE: u64 = 64 << 20;

pub(super) struct BackupApi {
    perm: PathBuf,
    restarter: Restarter,
    diagnostics: crate::diag::Diagnostics,
    /// How long the restarted routerd has to come up healthy with a restored tree.
    confirm_window: Duration,
    /// One restore at a time.
    restoring: Arc<tokio::sync::Mutex<()>>,
    /// The DHCP server, asked to write its whole lease table to `leases.json` before a backup.
    leases: Option<crate::lan::dhcp4d::commands::LeaseControl>,
}

impl BackupApi {
    pub(super) fn new(
        perm: PathBuf,
        restarter: Restarter,
        diagnostics: crate::diag::Diagnostics,
        confirm_window: Duration,
        leases: Option<crate::lan::dhcp4d::commands::LeaseControl>,
    ) -> Self {
        let restoring = Arc::new(tokio::sync::Mutex::new(()));
        BackupApi { perm, restarter, diagnostics, confirm_window, restoring, leases }
    }

    /// Folds the lease journal into `leases.json`, so the backup's lease file is current. If that fails the
    /// backup still holds every lease (the journal is in it too), so it goes ahead.
    async fn write_lease_file(&self) {
        let Some(leases) = &self.leases else { return };
        let written = tokio::time::timeout(LEASE_FILE_TIMEOUT, leases.send(LeaseCommand::WriteFile)).await;
        match written {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::warn!("backup: leases.json not brought up to date ({error}); the journal has the rest")
            }
            Err(_) => {
                tracing::warn!("backup: the DHCP server did not write leases.json in time; the journal has the rest")
            }
        }
    }
}

/// How long a backup waits for the DHCP server to write its lease file.
const LEASE_FILE_TIMEOUT: Duration = Duration::from_secs(10);

#[tonic::async_trait]
impl BackupService for BackupApi {
    async fn create_backup(
        &self,
        _request: tonic::Request<pb::CreateBackupRequest>,
    ) -> Result<tonic::Response<tonic::codegen::BoxStream<pb::CreateBackupResponse>>, tonic::Status> {
        self.write_lease_file().await;
        let perm = self.perm.clone();
        let archive = tokio::task::spawn_blocking(move || archive::create(&perm))
            .await
            .map_err(|e| tonic::Status::internal(e.to_string()))?
            .map_err(|e| tonic::Status::internal(e.to_string()))?;
        tracing::info!("backup: {} files, {} bytes", archive.files, archive.bytes.len());
        let summary = pb::BackupSummary {
            sha256: routerd_proto::sha256_hex(&archive.bytes),
            size: archive.bytes.len() as u64,
            files: archive.files,
        };
        let mut messages: Vec<Result<pb::CreateBackupResponse, tonic::Status>> = archive
            .bytes
            .chunks(CHUNK)
            .map(|chunk| {
                Ok(pb::CreateBackupResponse {
                    content: Some(pb::create_backup_response::Content::Chunk(chunk.to_vec())),
                })
            })
            .collect();
        messages.push(Ok(pb::CreateBackupResponse {
            content: Some(pb::create_backup_response::Content::Summary(summary)),
        }));
        Ok(tonic::Response::new(Box::pin(tokio_stream::iter(messages))))
    }

    async fn get_restore_status(
        &self,
        _request: tonic::Request<pb::GetRestoreStatusRequest>,
    ) -> Result<tonic::Response<pb::GetRestoreStatusResponse>, tonic::Status> {
        let perm = self.perm.clone();
        let status = tokio::task::spawn_blocking(move || restore::status(&perm))
            .await
            .map_err(|e| tonic::Status::internal(e.to_string()))?;
        let Some(status) = status else {
            return Ok(tonic::Response::new(pb::GetRestoreStatusResponse {
                state: pb::RestoreState::None as i32,
                ..Default::default()
            }));
        };
        let state = match status.state.as_str() {
            "on_trial" => pb::RestoreState::OnTrial,
            "confirmed" => pb::RestoreState::Confirmed,
            "rolled_back" => pb::RestoreState::RolledBack,
            _ => pb::RestoreState::Unspecified,
        };
        Ok(tonic::Response::new(pb::GetRestoreStatusResponse {
            state: state as i32,
            reason: status.reason,
            files: u32::try_from(status.files).unwrap_or(u32::MAX),
            at: Some(super::timestamp_from_offset(status.at)),
        }))
    }

    async fn restore_backup(
        &self,
        request: tonic::Request<tonic::Streaming<pb::RestoreBackupRequest>>,
    ) -> Result<tonic::Response<pb::RestoreBackupResponse>, tonic::Status> {
        let _one = self
            .restoring
            .try_lock()
            .map_err(|_| tonic::Status::aborted("another restore is in progress; try again when it is done"))?;
        let bytes = receive_archive(request.into_inner()).await?;
        let perm = self.perm.clone();
        // Under a keeper the files are swapped in at the next start, when no service can write over them, and
        // held to the same rule as an update: no check may fail that passes now, or the previous tree is back.
        let restarting = crate::update::has_keeper();
        let plan = if restarting {
            let report = self.diagnostics.evaluate(|_| {}).await;
            Some(restore::TrialPlan {
                baseline_failed: report.failed().map(|n| n.id.clone()).collect(),
                window_seconds: self.confirm_window.as_secs(),
            })
        } else {
            None
        };
        let restored = tokio::task::spawn_blocking(move || {
            let entries = archive::read(&bytes, Limits::default())?;
            match plan {
                Some(plan) => restore::restore_at_next_start(&perm, &entries, plan),
                None => restore::restore(&perm, &entries),
            }
        })
        .await
        .map_err(|e| tonic::Status::internal(e.to_string()))?
        .map_err(|e| match e {
            crate::backup::BackupError::Write { .. } | crate::backup::BackupError::Read { .. } => {
                tonic::Status::internal(e.to_string())
            }
            crate::backup::BackupError::TrialRunning => tonic::Status::failed_precondition(e.to_string()),
            refused => tonic::Status::invalid_argument(format!("{refused}; nothing changed")),
        })?;
        tracing::warn!(
            "restoring {restored} files from a backup{}",
            if restarting { ": starting again to swap them in and apply them" } else { "" }
        );
        if restarting {
            self.restarter.request_after(Duration::from_millis(300));
        }
        Ok(tonic::Response::new(pb::RestoreBackupResponse { files: restored as u32, restarting }))
    }
}

/// The archive a restore uploads: the header (size, SHA-256), then chunks adding up to exactly that size and
/// hash. Nothing is written before all of it is here and checked.
async fn receive_archive(mut stream: tonic::Streaming<pb::RestoreBackupRequest>) -> Result<Vec<u8>, tonic::Status> {
    let header = match stream.next().await {
        Some(Ok(pb::RestoreBackupRequest { content: Some(pb::restore_backup_request::Content::Header(header)) })) => {
            header
        }
        Some(Err(status)) => return Err(status),
        _ => return Err(tonic::Status::invalid_argument("the first message must be the header (size, sha256)")),
    };
    if header.size == 0 || header.size > MAX_ARCHIVE {
        return Err(tonic::Status::invalid_argument(format!("size {} is outside 1–{MAX_ARCHIVE} bytes", header.size)));
    }
    let mut bytes = Vec::with_capacity(header.size as usize);
    while let Some(message) = stream.next().await {
        match message?.content {
            Some(pb::restore_backup_request::Content::Chunk(chunk)) => {
                if bytes.len() as u64 + chunk.len() as u64 > header.size {
                    return Err(tonic::Status::invalid_argument(format!(
                        "more data than the {} bytes the header announced; nothing changed",
                        header.size
                    )));
                }
                bytes.extend_from_slice(&chunk);
            }
            _ => return Err(tonic::Status::invalid_argument("only chunks may follow the header; nothing changed")),
        }
    }
    if bytes.len() as u64 != header.size {
        return Err(tonic::Status::invalid_argument(format!(
            "received {} bytes, the header announced {}; nothing changed",
            bytes.len(),
            header.size
        )));
    }
    let got = routerd_proto::sha256_hex(&bytes);
    if !got.eq_ignore_ascii_case(&header.sha256) {
        return Err(tonic::Status::invalid_argument(format!(
            "SHA-256 mismatch: the header says {}, the archive hashes to {got}; nothing changed",
            header.sha256
        )));
    }
    Ok(bytes)
}
