//! A new version on trial confirms itself: once its diagnostics fail no check that did not already fail before
//! the update, it records itself as the version to keep. Until then the keeper stands ready to roll back.

use std::{path::PathBuf, time::Duration};

use super::state::{BIN_DIR, UpdateState};
use crate::{
    diag::Diagnostics,
    supervisor::{ServiceContext, ServiceError, ServiceState},
};

/// How often the trial looks at the diagnostics.
const EVERY: Duration = Duration::from_secs(2);

/// Whether a report counts as healthy for the trial: nothing failed beyond what failed before the update.
pub fn healthy_enough(failed: &[String], baseline: &[String]) -> bool {
    failed.iter().all(|id| baseline.contains(id))
}

/// Waits [`EVERY`] (or for shutdown: `None`), evaluates the diagnostics, and returns the report with the checks
/// that fail now but did not before (`baseline`): the step of every trial, of an update or of a restore.
pub async fn next_verdict(
    diagnostics: &Diagnostics,
    baseline: &[String],
    shutdown: &mut crate::supervisor::Shutdown,
) -> Option<(std::sync::Arc<crate::diag::Report>, Vec<String>)> {
    tokio::select! {
        _ = shutdown.wait() => return None,
        _ = tokio::time::sleep(EVERY) => {}
    }
    let report = diagnostics.evaluate(|_| {}).await;
    let new_failures = report.failed().map(|n| n.id.clone()).filter(|id| !baseline.contains(id)).collect();
    Some((report, new_failures))
}

/// Records the trial's version as confirmed and removes binaries nothing refers to any more.
pub fn confirm(perm: &std::path::Path) -> Result<String, String> {
    let mut state = UpdateState::load(perm).map_err(|e| e.to_string())?;
    let artifact = state.confirm().map_err(|e| e.to_string())?;
    state.save(perm).map_err(|e| e.to_string())?;
    let binaries: Vec<PathBuf> =
        std::fs::read_dir(perm.join(BIN_DIR)).map(|dir| dir.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    for stale in state.unreferenced(&binaries) {
        let _ = std::fs::remove_file(stale);
    }
    Ok(artifact.version)
}

pub async fn run(perm: PathBuf, diagnostics: Diagnostics, mut context: ServiceContext) -> Result<(), ServiceError> {
    let baseline = match UpdateState::load(&perm)?.trial {
        Some(trial) => trial.baseline_failed,
        None => {
            context.report(ServiceState::Disabled, "no update on trial");
            context.shutdown.wait().await;
            return Ok(());
        }
    };
    context.report(ServiceState::Running, "on trial: waiting for healthy diagnostics");
    loop {
        let Some((report, new_failures)) = next_verdict(&diagnostics, &baseline, &mut context.shutdown).await else {
            return Ok(());
        };
        if !new_failures.is_empty() {
            tracing::info!("on trial, not confirmed yet: {}", report.summary());
            continue;
        }
        match confirm(&perm) {
            Ok(version) => {
                tracing::info!("update confirmed: {version} is healthy ({}) and stays", report.summary());
                context.report(ServiceState::Disabled, format!("confirmed {version}"));
            }
            // Confirmed or rolled back by hand meanwhile.
            Err(error) => tracing::info!("trial ended: {error}"),
        }
        context.shutdown.wait().await;
        return Ok(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_new_failures_hold_a_trial_back() {
        let baseline = vec!["uplink/dhcp6".to_string()];
        assert!(healthy_enough(&[], &baseline));
        assert!(healthy_enough(&["uplink/dhcp6".into()], &baseline));
        assert!(!healthy_enough(&["uplink/link".into()], &baseline));
    }
}
