//! The new system on trial confirms itself: once its diagnostics fail nothing that passed before the update, its
//! slot becomes the boot default and init stops the watchdog. If that does not happen within the window, it says
//! why and asks init for a restart, which boots the old slot (still the default).

use std::{path::PathBuf, time::Duration};

use routerd_init::layout::Slot;
use tokio::time::Instant;

use super::{
    slots,
    state::{SlotVersion, SystemState},
};
use crate::{
    diag::Diagnostics,
    supervisor::{ServiceContext, ServiceError, ServiceState},
};

pub async fn run(
    perm: PathBuf,
    hostname: String,
    diagnostics: Diagnostics,
    mut context: ServiceContext,
) -> Result<(), ServiceError> {
    let state = SystemState::load(&perm)?;
    let running = super::state::running_slot();
    let Some(trial) = state.trial.clone().filter(|t| running.map(Slot::name) == Some(t.to_slot.as_str())) else {
        context.report(ServiceState::Disabled, "no system update on trial");
        context.shutdown.wait().await;
        return Ok(());
    };
    let deadline = Instant::now() + Duration::from_secs(trial.window_seconds);
    context
        .report(ServiceState::Running, format!("system {} on trial: waiting for healthy diagnostics", trial.version));
    let mut last = String::new();
    loop {
        if Instant::now() >= deadline {
            let reason = format!("not healthy within {} s ({last})", trial.window_seconds);
            tracing::error!("system update {}: {reason}; going back to slot {}", trial.version, trial.from_slot);
            let path = perm.join(routerd_init::handoff::TRIAL_FAILED);
            if let Err(error) = std::fs::write(&path, format!("{reason}\n")) {
                tracing::warn!("writing {}: {error}", path.display());
            }
            // PID 1 is routerd-init, which restarts the machine on SIGTERM.
            if let Err(error) = crate::sys::process::signal(1, libc::SIGTERM) {
                tracing::error!("signalling init to restart the machine: {error}");
            }
            context.shutdown.wait().await;
            return Ok(());
        }
        let Some((report, new_failures)) =
            crate::update::trial::next_verdict(&diagnostics, &trial.baseline_failed, &mut context.shutdown).await
        else {
            return Ok(());
        };
        if !new_failures.is_empty() {
            last = format!("failing: {}", new_failures.join(", "));
            tracing::info!("system on trial, not confirmed yet: {}", report.summary());
            continue;
        }
        match confirm(&perm, &hostname, &trial) {
            Ok(()) => {
                tracing::info!(
                    "system update {} confirmed ({}): slot {} boots from now on",
                    trial.version,
                    report.summary(),
                    trial.to_slot
                );
                context.report(ServiceState::Disabled, format!("confirmed system {}", trial.version));
            }
            Err(error) => {
                tracing::error!("confirming system update {}: {error}", trial.version);
                context.report(ServiceState::Running, format!("cannot confirm: {error}"));
            }
        }
        context.shutdown.wait().await;
        return Ok(());
    }
}

fn confirm(perm: &std::path::Path, hostname: &str, trial: &super::state::SystemTrial) -> Result<(), String> {
    let to = Slot::parse(&trial.to_slot).ok_or("the trial names no slot")?;
    let boot = slots::mount_boot()?;
    slots::set_boot_default(&boot, to, hostname)?;
    let mut state = SystemState::load(perm).map_err(|e| e.to_string())?;
    state.trial = None;
    state.previous = Some(SlotVersion { slot: trial.from_slot.clone(), version: trial.from_version.clone() });
    state.save(perm).map_err(|e| e.to_string())?;
    let confirmed = std::path::Path::new(routerd_init::handoff::CONFIRMED);
    if let Some(dir) = confirmed.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(confirmed, b"confirmed\n").map_err(|e| format!("telling init: {e}"))
}
