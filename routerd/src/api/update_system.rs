//! UpdateService for system bundles on the appliance: staged once checked whole, activated by writing the
//! inactive slot and asking init for a kexec, rolled back on request to the slot before.

use std::{path::Path, time::Duration};

use routerd_init::layout::Slot;

use crate::{
    config::Config,
    update::system::{
        bundle, slots,
        state::{self, SystemState, SystemTrial},
    },
};

fn internal(error: impl std::fmt::Display) -> tonic::Status {
    tonic::Status::internal(error.to_string())
}

/// System updates need the appliance: its init does the kexec and keeps the watchdog.
pub fn needs_appliance() -> Result<Slot, tonic::Status> {
    if std::env::var_os("ROUTERD_INIT").is_none() {
        return Err(tonic::Status::failed_precondition(
            "system updates are for the appliance (routerd started by routerd-init); here, update routerd with --binary",
        ));
    }
    state::running_slot()
        .ok_or_else(|| tonic::Status::failed_precondition("the kernel command line names no routerd.slot"))
}

/// The signing keys routerd.json requires, read afresh.
fn signing_keys(perm: &Path) -> Vec<[u8; 32]> {
    Config::load(perm).settings.update_signing_keys
}

/// Checks an uploaded bundle at `path` and stages it; a bundle that fails is removed.
pub fn stage(perm: &Path, path: &Path) -> Result<String, tonic::Status> {
    let checked = match bundle::check(path, &signing_keys(perm)) {
        Ok(checked) => checked,
        Err(error) => {
            let _ = std::fs::remove_file(path);
            return Err(tonic::Status::invalid_argument(format!("{error}; nothing was staged")));
        }
    };
    let mut system = SystemState::load(perm).map_err(internal)?;
    system.staged = Some(checked.manifest.version.clone());
    system.save(perm).map_err(internal)?;
    tracing::info!(
        "system update staged: {} (kernel {}, {})",
        checked.manifest.version,
        checked.manifest.kernel_release,
        if checked.signed { "signed" } else { "unsigned" }
    );
    Ok(checked.manifest.version)
}

/// Writes the staged bundle into the other slot and asks init to kexec into it, on trial for `window`.
pub fn activate(perm: &Path, window: Duration, baseline: Vec<String>) -> Result<String, tonic::Status> {
    let running = needs_appliance()?;
    let mut system = SystemState::load(perm).map_err(internal)?;
    let Some(version) = system.staged.clone() else {
        return Err(tonic::Status::failed_precondition("no system update is staged"));
    };
    let path = SystemState::staged_bundle(perm);
    let checked = bundle::check(&path, &signing_keys(perm))
        .map_err(|e| tonic::Status::failed_precondition(format!("the staged bundle: {e}")))?;
    let target = running.other();
    let boot = slots::mount_boot().map_err(tonic::Status::internal)?;
    tracing::warn!("system update {version}: writing slot {}", target.name());
    slots::install(&checked, target, &boot).map_err(tonic::Status::internal)?;
    let hostname = hostname();
    system.staged = None;
    system.last_rollback_reason = None;
    system.trial = Some(SystemTrial {
        version: version.clone(),
        from_slot: running.name().to_string(),
        from_version: crate::update::system::running_system().unwrap_or_else(|| "unknown".into()),
        to_slot: target.name().to_string(),
        window_seconds: window.as_secs(),
        baseline_failed: baseline,
    });
    system.save(perm).map_err(internal)?;
    let _ = std::fs::remove_file(&path);
    let request = routerd_init::handoff::KexecRequest {
        kernel: boot.join(target.kernel()).display().to_string(),
        initramfs: boot.join(target.initramfs()).display().to_string(),
        cmdline: target.cmdline(&hostname, Some(window.as_secs())),
    };
    request.write().map_err(|e| internal(format!("writing the kexec request: {e}")))?;
    tracing::warn!(
        "system update {version}: switching to slot {} by kexec, on trial for {} s",
        target.name(),
        window.as_secs()
    );
    tokio::spawn(async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // PID 1 is routerd-init, which loads the kexec request on SIGUSR1.
        if let Err(error) = crate::sys::process::signal(1, libc::SIGUSR1) {
            tracing::error!("signalling init to switch systems: {error}");
        }
    });
    Ok(version)
}

/// After a confirmed system update: the slot before becomes the boot default again, and the machine restarts.
pub fn roll_back(perm: &Path) -> Result<Option<String>, tonic::Status> {
    let mut system = SystemState::load(perm).map_err(internal)?;
    let Some(previous) = system.previous.clone() else { return Ok(None) };
    needs_appliance()?;
    let slot = Slot::parse(&previous.slot).ok_or_else(|| internal("update/system.json names no slot to go back to"))?;
    let boot = slots::mount_boot().map_err(tonic::Status::internal)?;
    slots::set_boot_default(&boot, slot, &hostname()).map_err(tonic::Status::internal)?;
    system.previous = None;
    system.last_rollback_reason = Some(format!("rolled back to {} on request", previous.version));
    system.save(perm).map_err(internal)?;
    tracing::warn!("rolling the system back to {} (slot {}) on request: restarting", previous.version, previous.slot);
    tokio::spawn(async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // SIGTERM restarts the machine, which boots the new default.
        if let Err(error) = crate::sys::process::signal(1, libc::SIGTERM) {
            tracing::error!("signalling init to restart the machine: {error}");
        }
    });
    Ok(Some(previous.version))
}

fn hostname() -> String {
    routerd_init::cmdline::Cmdline::read()
        .ok()
        .and_then(|c| c.get("routerd.hostname").map(str::to_string))
        .unwrap_or_else(|| "router".to_string())
}
