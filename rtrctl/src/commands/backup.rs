//! `rtrctl backup create FILE` and `rtrctl backup restore FILE`: the router's `--perm` as tar.gz, with a
//! progress bar and the SHA-256 checked end to end.

use std::path::Path;

use routerd_proto::v1 as pb;
use serde::Serialize;

use crate::{
    cli::{BackupAction, Cli},
    error::CliError,
    output::{self, Format},
    progress::{self, Progress},
};

const CHUNK: usize = 64 * 1024;

#[derive(Debug, Serialize)]
pub struct BackupDoc {
    pub file: String,
    pub files: u32,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Serialize)]
pub struct RestoreDoc {
    pub file: String,
    pub files: u32,
    pub restarting: bool,
}

/// Downloads a backup into `path` (through a `.partial` file, renamed once the hash matched).
pub async fn download(cli: &Cli, path: &Path, force: bool) -> Result<BackupDoc, CliError> {
    if path.exists() && !force {
        return Err(CliError::Usage(format!("{} exists; pass --force to overwrite it", path.display())));
    }
    let mut client = pb::backup_service_client::BackupServiceClient::new(super::connect(cli).await?);
    let mut stream = client
        .create_backup(pb::CreateBackupRequest {})
        .await
        .map_err(|status| CliError::from_status("backup create", &status))?
        .into_inner();
    let mut bytes = Vec::new();
    let mut summary = None;
    let mut progress = Progress::new("backup", 0);
    while let Some(message) =
        stream.message().await.map_err(|status| CliError::from_status("backup create", &status))?
    {
        match message.content {
            Some(pb::create_backup_response::Content::Chunk(chunk)) => {
                progress.advance(chunk.len() as u64);
                bytes.extend_from_slice(&chunk);
            }
            Some(pb::create_backup_response::Content::Summary(s)) => summary = Some(s),
            None => {}
        }
    }
    progress.finish();
    let summary = summary.ok_or_else(|| CliError::Io("the router ended the backup without its summary".into()))?;
    let got = routerd_proto::sha256_hex(&bytes);
    if got != summary.sha256 || bytes.len() as u64 != summary.size {
        return Err(CliError::Io(format!(
            "the backup arrived damaged: {} bytes hashing to {got}, the router sent {} bytes hashing to {}",
            bytes.len(),
            summary.size,
            summary.sha256
        )));
    }
    // A backup holds the router's CA key: only its owner may read it.
    crate::private_file::write_private(path, &bytes)
        .map_err(|e| CliError::Io(format!("writing {}: {e}", path.display())))?;
    Ok(BackupDoc { file: path.display().to_string(), files: summary.files, size: summary.size, sha256: summary.sha256 })
}

async fn restore(cli: &Cli, path: &Path) -> Result<RestoreDoc, CliError> {
    let bytes = std::fs::read(path).map_err(|e| CliError::Io(format!("reading {}: {e}", path.display())))?;
    let header = pb::RestoreBackupRequest {
        content: Some(pb::restore_backup_request::Content::Header(pb::RestoreBackupHeader {
            size: bytes.len() as u64,
            sha256: routerd_proto::sha256_hex(&bytes),
        })),
    };
    let mut progress = Progress::new("restore", bytes.len() as u64);
    let mut messages = vec![header];
    for chunk in bytes.chunks(CHUNK) {
        messages.push(pb::RestoreBackupRequest {
            content: Some(pb::restore_backup_request::Content::Chunk(chunk.to_vec())),
        });
    }
    let stream = tokio_stream::StreamExt::map(tokio_stream::iter(messages), move |message| {
        if let Some(pb::restore_backup_request::Content::Chunk(chunk)) = &message.content {
            progress.advance(chunk.len() as u64);
        }
        message
    });
    let mut client = pb::backup_service_client::BackupServiceClient::new(super::connect(cli).await?);
    let response = client
        .restore_backup(stream)
        .await
        .map_err(|status| CliError::from_status("backup restore", &status))?
        .into_inner();
    Ok(RestoreDoc { file: path.display().to_string(), files: response.files, restarting: response.restarting })
}

#[derive(Debug, Serialize)]
pub struct RestoreStatusDoc {
    pub state: &'static str,
    pub reason: String,
    pub files: u32,
    pub at: Option<String>,
}

async fn restore_status(cli: &Cli) -> Result<RestoreStatusDoc, CliError> {
    let mut client = pb::backup_service_client::BackupServiceClient::new(super::connect(cli).await?);
    let response = client
        .get_restore_status(pb::GetRestoreStatusRequest {})
        .await
        .map_err(|status| CliError::from_status("backup status", &status))?
        .into_inner();
    let state = match pb::RestoreState::try_from(response.state) {
        Ok(pb::RestoreState::None) => "none",
        Ok(pb::RestoreState::OnTrial) => "on_trial",
        Ok(pb::RestoreState::Confirmed) => "confirmed",
        Ok(pb::RestoreState::RolledBack) => "rolled_back",
        _ => "unknown",
    };
    Ok(RestoreStatusDoc {
        state,
        reason: response.reason,
        files: response.files,
        at: response.at.as_ref().map(output::rfc3339),
    })
}

pub async fn run(cli: &Cli, action: &BackupAction) -> Result<(), CliError> {
    match action {
        BackupAction::Status => {
            let doc = restore_status(cli).await?;
            match cli.output {
                Format::Json => output::print_json(&doc),
                Format::Table => {
                    let at = doc.at.as_deref().unwrap_or("");
                    match doc.state {
                        "none" => println!("no restore was made on this router"),
                        "on_trial" => println!(
                            "restore of {} files at {at}: on trial (waiting for healthy diagnostics)",
                            doc.files
                        ),
                        "confirmed" => println!("restore of {} files at {at}: confirmed", doc.files),
                        "rolled_back" => {
                            println!("restore of {} files at {at}: rolled back: {}", doc.files, doc.reason)
                        }
                        other => println!("restore: {other}"),
                    }
                    Ok(())
                }
            }
        }
        BackupAction::Create { file, force } => {
            let doc = download(cli, file, *force).await?;
            match cli.output {
                Format::Json => output::print_json(&doc),
                Format::Table => {
                    println!(
                        "backup {}: {} files, {}, sha256 {}",
                        doc.file,
                        doc.files,
                        progress::size(doc.size),
                        doc.sha256
                    );
                    Ok(())
                }
            }
        }
        BackupAction::Restore { file } => {
            let doc = restore(cli, file).await?;
            match cli.output {
                Format::Json => output::print_json(&doc),
                Format::Table => {
                    let then = if doc.restarting {
                        "routerd restarts to apply them (a few seconds)"
                    } else {
                        "restart routerd to apply them"
                    };
                    println!("restored {} files from {}; {then}", doc.files, doc.file);
                    Ok(())
                }
            }
        }
    }
}
