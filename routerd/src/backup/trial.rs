//! A restored tree on trial: once the diagnostics fail no check that passed before the restore, the restore is
//! confirmed; when that does not happen within the window (measured on the monotonic clock), the previous tree
//! comes back and routerd starts again with it.

use std::{path::PathBuf, time::Duration};

use super::restore;
use crate::{
    diag::Diagnostics,
    restart::Restarter,
    supervisor::{ServiceContext, ServiceError, ServiceState},
    update::trial::next_verdict,
};

pub async fn run(
    perm: PathBuf,
    diagnostics: Diagnostics,
    restarter: Restarter,
    mut context: ServiceContext,
) -> Result<(), ServiceError> {
    let Some(trial) = restore::trial(&perm) else {
        context.report(ServiceState::Disabled, "no restore on trial");
        context.shutdown.wait().await;
        return Ok(());
    };
    let window = Duration::from_secs(trial.plan.window_seconds);
    let started = tokio::time::Instant::now();
    context.report(
        ServiceState::Running,
        format!("restore on trial: healthy within {} s or rolled back", window.as_secs()),
    );
    loop {
        let verdict = next_verdict(&diagnostics, &trial.plan.baseline_failed, &mut context.shutdown).await;
        let Some((report, new_failures)) = verdict else { return Ok(()) };
        if new_failures.is_empty() {
            let files = tokio::task::spawn_blocking({
                let perm = perm.clone();
                move || restore::confirm(&perm)
            })
            .await??;
            tracing::info!("restore confirmed: {files} files, healthy ({})", report.summary());
            context.report(ServiceState::Disabled, format!("restore of {files} files confirmed"));
            break;
        }
        if started.elapsed() >= window {
            let reason = format!(
                "not healthy within {} s after the restore: {} failed",
                window.as_secs(),
                new_failures.join(", ")
            );
            tokio::task::spawn_blocking({
                let perm = perm.clone();
                move || restore::roll_back(&perm, &reason)
            })
            .await??;
            context.report(ServiceState::Disabled, "restore rolled back; starting again");
            restarter.request_after(Duration::from_millis(100));
            break;
        }
        tracing::info!("restore on trial, not confirmed yet: {}", report.summary());
    }
    context.shutdown.wait().await;
    Ok(())
}
