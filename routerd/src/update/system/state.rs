//! `update/system.json`: the system update staged, on trial, and the one before (for a rollback on request).

use std::path::{Path, PathBuf};

use routerd_init::layout::Slot;
use serde::{Deserialize, Serialize};

use crate::store::{self, Mode, StoreError};

pub const STATE_FILE: &str = "update/system.json";
pub const STAGED_BUNDLE: &str = "update/system-staged.rbundle";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemState {
    /// The version of the checked bundle at [`STAGED_BUNDLE`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<SystemTrial>,
    /// The slot and version to go back to on request, after a confirmed update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<SlotVersion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rollback_reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemTrial {
    pub version: String,
    /// "a" or "b".
    pub from_slot: String,
    pub from_version: String,
    pub to_slot: String,
    pub window_seconds: u64,
    /// Checks that failed before the update (not held against the new system).
    pub baseline_failed: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotVersion {
    pub slot: String,
    pub version: String,
}

impl SystemState {
    pub fn load(perm: &Path) -> Result<SystemState, StoreError> {
        Ok(store::read_json_optional(&perm.join(STATE_FILE))?.unwrap_or_default())
    }

    pub fn save(&self, perm: &Path) -> Result<(), StoreError> {
        store::write_json(&perm.join(STATE_FILE), self, Mode::Public)
    }

    pub fn staged_bundle(perm: &Path) -> PathBuf {
        perm.join(STAGED_BUNDLE)
    }
}

/// The slot this system booted from (`routerd.slot=` on the kernel command line).
pub fn running_slot() -> Option<Slot> {
    let cmdline = routerd_init::cmdline::Cmdline::read().ok()?;
    cmdline.get("routerd.slot").and_then(Slot::parse)
}

/// At start: an update on trial whose slot is not the one running failed (init wrote why, or the machine was
/// reset before it could). Records the rollback; says what happened.
pub fn reconcile_at_start(perm: &Path, running: Option<Slot>) -> Option<String> {
    let mut state = SystemState::load(perm).ok()?;
    let trial = state.trial.clone()?;
    if running.map(Slot::name) == Some(trial.to_slot.as_str()) {
        return None;
    }
    let failed = perm.join(routerd_init::handoff::TRIAL_FAILED);
    let reason = std::fs::read_to_string(&failed).ok().map(|r| r.trim().to_string()).filter(|r| !r.is_empty());
    let reason = reason.unwrap_or_else(|| {
        "the new system was reset before it confirmed itself (a kernel panic, a hang caught by the watchdog, or a \
         power cut)"
            .to_string()
    });
    state.trial = None;
    state.last_rollback_reason = Some(format!("system {}: {reason}", trial.version));
    let _ = std::fs::remove_file(&failed);
    match state.save(perm) {
        Ok(()) => {
            Some(format!("system update {} rolled back: {reason}; running {}", trial.version, trial.from_version))
        }
        Err(error) => Some(format!(
            "system update {} failed ({reason}) and {STATE_FILE} cannot be written: {error}",
            trial.version
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on_trial() -> SystemState {
        SystemState {
            trial: Some(SystemTrial {
                version: "next".into(),
                from_slot: "a".into(),
                from_version: "first".into(),
                to_slot: "b".into(),
                window_seconds: 120,
                baseline_failed: vec![],
            }),
            ..SystemState::default()
        }
    }

    #[test]
    fn a_trial_found_in_the_old_slot_is_a_rollback_with_inits_reason_or_a_reset() {
        let dir = tempfile::tempdir().expect("temp");
        on_trial().save(dir.path()).expect("save");
        assert_eq!(reconcile_at_start(dir.path(), Some(Slot::B)), None, "the new system on trial");
        std::fs::create_dir_all(dir.path().join("update")).expect("dir");
        std::fs::write(dir.path().join(routerd_init::handoff::TRIAL_FAILED), "routerd ended (exit code 3)\n")
            .expect("w");
        let said = reconcile_at_start(dir.path(), Some(Slot::A)).expect("a rollback");
        assert!(said.contains("exit code 3"), "{said}");
        let state = SystemState::load(dir.path()).expect("load");
        assert!(state.trial.is_none());
        assert_eq!(state.last_rollback_reason.as_deref(), Some("system next: routerd ended (exit code 3)"));
        on_trial().save(dir.path()).expect("save");
        let said = reconcile_at_start(dir.path(), Some(Slot::A)).expect("a rollback");
        assert!(said.contains("reset before it confirmed"), "{said}");
    }
}
