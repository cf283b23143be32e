//! `rtrctl update --binary FILE`: the whole safe sequence (health first, a backup, upload, activate, wait for
//! the new version to confirm itself or be rolled back), and `rtrctl update status|confirm|rollback`.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use routerd_proto::v1 as pb;
use serde::Serialize;

use crate::{
    cli::{Cli, UpdateAction, UpdateArgs},
    error::CliError,
    output::{self, Format},
    progress::{self, Progress},
};

const CHUNK: usize = 256 * 1024;

#[derive(Debug, Serialize)]
pub struct UpdateDoc {
    /// updated or rolled_back
    pub outcome: String,
    pub running_version: String,
    pub previous_version: String,
    pub reason: String,
    pub backup: Option<String>,
    pub seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct StatusDoc {
    pub phase: String,
    pub running_version: String,
    pub previous_version: String,
    pub staged_version: String,
    pub trial_deadline: Option<i64>,
    pub last_rollback_reason: String,
}

fn phase_name(phase: i32) -> String {
    pb::UpdatePhase::try_from(phase)
        .map(|p| p.as_str_name().trim_start_matches("UPDATE_PHASE_").to_ascii_lowercase())
        .unwrap_or_else(|_| "unknown".into())
}

async fn client(
    cli: &Cli,
) -> Result<pb::update_service_client::UpdateServiceClient<tonic::transport::Channel>, CliError> {
    Ok(pb::update_service_client::UpdateServiceClient::new(super::connect(cli).await?))
}

async fn status(cli: &Cli) -> Result<pb::GetUpdateStatusResponse, CliError> {
    client(cli)
        .await?
        .get_update_status(pb::GetUpdateStatusRequest {})
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| CliError::from_status("update status", &status))
}

/// Says what is happening (table output only; JSON gets one document at the end).
fn say(cli: &Cli, line: &str) {
    if cli.output == Format::Table {
        println!("{line}");
    }
}

async fn upload(cli: &Cli, binary: &Path, version: &str, kind: pb::ArtifactKind) -> Result<(String, String), CliError> {
    let bytes = std::fs::read(binary).map_err(|e| CliError::Io(format!("reading {}: {e}", binary.display())))?;
    let sha256 = routerd_proto::sha256_hex(&bytes);
    let header = pb::UploadUpdateRequest {
        content: Some(pb::upload_update_request::Content::Header(pb::UpdateHeader {
            kind: kind as i32,
            version: version.to_string(),
            size: bytes.len() as u64,
            sha256: sha256.clone(),
        })),
    };
    let mut progress = Progress::new("upload", bytes.len() as u64);
    let chunks: Vec<pb::UploadUpdateRequest> =
        std::iter::once(header)
            .chain(bytes.chunks(CHUNK).map(|c| pb::UploadUpdateRequest {
                content: Some(pb::upload_update_request::Content::Chunk(c.to_vec())),
            }))
            .collect();
    let stream = tokio_stream::StreamExt::map(tokio_stream::iter(chunks), move |message| {
        if let Some(pb::upload_update_request::Content::Chunk(chunk)) = &message.content {
            progress.advance(chunk.len() as u64);
        }
        message
    });
    let staged = client(cli)
        .await?
        .upload_update(stream)
        .await
        .map_err(|status| CliError::from_status("update upload", &status))?
        .into_inner()
        .staged_version;
    Ok((staged, sha256))
}

pub async fn run(cli: &Cli, args: &UpdateArgs) -> Result<(), CliError> {
    match (&args.action, &args.binary, &args.image) {
        (Some(action), None, None) => run_action(cli, action).await,
        (None, Some(binary), None) => safe_update(cli, args, binary, pb::ArtifactKind::DaemonBinary).await,
        (None, None, Some(image)) => safe_update(cli, args, image, pb::ArtifactKind::SystemImage).await,
        (None, None, None) => Err(CliError::Usage(
            "rtrctl update --binary FILE or --image BUNDLE (the safe update), or rtrctl update status|confirm|rollback"
                .into(),
        )),
        _ => Err(CliError::Usage("give one of --binary FILE, --image BUNDLE, or status|confirm|rollback".into())),
    }
}

async fn run_action(cli: &Cli, action: &UpdateAction) -> Result<(), CliError> {
    match action {
        UpdateAction::Status => {
            let s = status(cli).await?;
            let doc = StatusDoc {
                phase: phase_name(s.phase),
                running_version: s.running_version,
                previous_version: s.previous_version,
                staged_version: s.staged_version,
                trial_deadline: s.trial_deadline.map(|t| t.seconds),
                last_rollback_reason: s.last_rollback_reason,
            };
            match cli.output {
                Format::Json => output::print_json(&doc),
                Format::Table => {
                    println!("phase:    {}", doc.phase);
                    println!("running:  {}", doc.running_version);
                    for (label, value) in [
                        ("previous", &doc.previous_version),
                        ("staged", &doc.staged_version),
                        ("rollback", &doc.last_rollback_reason),
                    ] {
                        if !value.is_empty() {
                            println!("{label:<9} {value}");
                        }
                    }
                    Ok(())
                }
            }
        }
        UpdateAction::Confirm => {
            client(cli)
                .await?
                .confirm_update(pb::ConfirmUpdateRequest {})
                .await
                .map_err(|status| CliError::from_status("update confirm", &status))?;
            say(cli, "confirmed: the running version stays");
            if cli.output == Format::Json {
                output::print_json(&serde_json::json!({"confirmed": true}))?;
            }
            Ok(())
        }
        UpdateAction::Rollback => {
            let version = client(cli)
                .await?
                .rollback_update(pb::RollbackUpdateRequest {})
                .await
                .map_err(|status| CliError::from_status("update rollback", &status))?
                .into_inner()
                .version;
            say(cli, &format!("rolling back to {version}; routerd restarts"));
            if cli.output == Format::Json {
                output::print_json(&serde_json::json!({"rolling_back_to": version}))?;
            }
            Ok(())
        }
    }
}

async fn safe_update(cli: &Cli, args: &UpdateArgs, binary: &Path, kind: pb::ArtifactKind) -> Result<(), CliError> {
    let started = Instant::now();
    let system = kind == pb::ArtifactKind::SystemImage;
    if !binary.is_file() {
        let flag = if system { "--image" } else { "--binary" };
        return Err(CliError::Usage(format!("{flag} {}: no such file", binary.display())));
    }
    // 1. Health first.
    check_health(cli, args).await?;
    let before = status(cli).await?;
    if before.phase == pb::UpdatePhase::Trial as i32 {
        return Err(CliError::Refused(format!("{} is on trial already; one update at a time", before.staged_version)));
    }
    // 2. A backup.
    let backup = take_backup(cli, args).await?;
    // 3. Upload.
    let (staged, sha256) = upload(cli, binary, args.version_name.as_deref().unwrap_or(""), kind).await?;
    say(cli, &format!("staged {staged} (sha256 {sha256})"));
    // 4. Activate.
    client(cli)
        .await?
        .activate_update(pb::ActivateUpdateRequest {
            confirm_window: args
                .confirm_window
                .map(|seconds| prost_types::Duration { seconds: seconds as i64, nanos: 0 }),
        })
        .await
        .map_err(|status| CliError::from_status("update activate", &status))?;
    // 5. Wait for the outcome; routerd is away for a moment while it starts again. The router decides by its
    // deadline; this only bounds the wait.
    let window = Duration::from_secs(args.confirm_window.unwrap_or(3600));
    match args.confirm_window {
        Some(seconds) => say(cli, &format!("activated; the new version has {seconds} s to report healthy…")),
        None if system => {
            say(cli, "activated; the router switches to the new system (kexec) and waits for it to report healthy…")
        }
        None => say(cli, "activated; waiting for the new version to report healthy…"),
    }
    let deadline = Instant::now() + window + Duration::from_secs(30);
    // A daemon update runs as `VERSION+sha256.PREFIX`; a system update as `VERSION (system NAME)`.
    let new_build = if system { format!("(system {staged})") } else { format!("+sha256.{}", &sha256[..12]) };
    loop {
        if Instant::now() > deadline {
            return Err(CliError::Io(format!(
                "no outcome {} s after activation; see `rtrctl update status`",
                (window + Duration::from_secs(30)).as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Ok(now) = status(cli).await else { continue };
        let phase = pb::UpdatePhase::try_from(now.phase).unwrap_or(pb::UpdatePhase::Unspecified);
        let outcome = match phase {
            pb::UpdatePhase::Idle | pb::UpdatePhase::Staged if now.running_version.ends_with(&new_build) => "updated",
            pb::UpdatePhase::RolledBack => "rolled_back",
            _ => continue,
        };
        let doc = UpdateDoc {
            outcome: outcome.to_string(),
            running_version: now.running_version.clone(),
            previous_version: before.running_version.clone(),
            reason: now.last_rollback_reason.clone(),
            backup,
            seconds: started.elapsed().as_secs_f64(),
        };
        if cli.output == Format::Json {
            output::print_json(&doc)?;
        }
        return if outcome == "updated" {
            say(cli, &format!("updated: now running {} (was {})", doc.running_version, doc.previous_version));
            Ok(())
        } else {
            say(cli, &format!("rolled back: {}; running {}", doc.reason, doc.running_version));
            Err(CliError::Negative(format!("the update was rolled back: {}", doc.reason)))
        };
    }
}

/// The health check an update starts with: an unhealthy router is refused unless `--ignore-health`.
async fn check_health(cli: &Cli, args: &UpdateArgs) -> Result<(), CliError> {
    let health = pb::diagnostics_service_client::DiagnosticsServiceClient::new(super::connect(cli).await?)
        .get_health(pb::GetHealthRequest {})
        .await
        .map_err(|status| CliError::from_status("health check", &status))?
        .into_inner();
    if !health.healthy && !args.ignore_health {
        return Err(CliError::Refused(format!(
            "the router is unhealthy before the update ({}); fix that first, or pass --ignore-health (the new version is \
             then held only to the checks that pass now)",
            health.summary
        )));
    }
    say(cli, &format!("health: {}", health.summary));
    Ok(())
}

/// The backup taken before an update (unless `--no-backup`): where it went.
async fn take_backup(cli: &Cli, args: &UpdateArgs) -> Result<Option<String>, CliError> {
    if args.no_backup {
        return Ok(None);
    }
    let path = args.backup.clone().unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        PathBuf::from(format!("routerd-backup-{now}.tar.gz"))
    });
    let doc = super::backup::download(cli, &path, false).await?;
    say(cli, &format!("backup: {} ({} files, {})", doc.file, doc.files, progress::size(doc.size)));
    Ok(Some(doc.file))
}
