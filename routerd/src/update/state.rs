//! `update/state.json`: which binary runs, which is staged, the trial in progress, and the last rollback.
//! Transitions are plain functions on the record (tested without processes); the keeper and the daemon both
//! read and write it, always atomically.

use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use serde::{Deserialize, Serialize};

use crate::store::{self, Mode, StoreError};

pub const STATE_FILE: &str = "update/state.json";
pub const BIN_DIR: &str = "update/bin";

/// An uploaded binary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    pub version: String,
    pub sha256: String,
    pub path: PathBuf,
}

/// A new version on trial: it must confirm itself (healthy diagnostics) before the deadline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trial {
    pub artifact: Artifact,
    /// Unix seconds.
    pub deadline: u64,
    pub confirm_window_seconds: u64,
    /// Checks that already failed before the update: the new version is not held to them.
    #[serde(default)]
    pub baseline_failed: Vec<String>,
    /// The version that ran before (shown in the status; rolled back to).
    #[serde(default)]
    pub from_version: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateState {
    /// The confirmed uploaded binary the keeper runs; `None`: the installed one.
    #[serde(default)]
    pub current: Option<Artifact>,
    /// What ran before the last confirmed update (`None`: the installed binary).
    #[serde(default)]
    pub previous: Option<Artifact>,
    #[serde(default)]
    pub previous_version: Option<String>,
    #[serde(default)]
    pub staged: Option<Artifact>,
    #[serde(default)]
    pub trial: Option<Trial>,
    #[serde(default)]
    pub last_rollback_reason: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TransitionError {
    #[error("no update is staged; upload one first")]
    NothingStaged,
    #[error("an update is already on trial (version {0}); wait for it to be confirmed or rolled back")]
    TrialRunning(String),
    #[error("no update is on trial")]
    NoTrial,
    #[error("there is no earlier version to go back to")]
    NothingToRollBackTo,
}

fn unix(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl UpdateState {
    pub fn load(perm: &Path) -> Result<UpdateState, StoreError> {
        Ok(store::read_json_optional(&perm.join(STATE_FILE))?.unwrap_or_default())
    }

    pub fn save(&self, perm: &Path) -> Result<(), StoreError> {
        store::write_json(&perm.join(STATE_FILE), self, Mode::Public)
    }

    /// Stages an uploaded binary (replacing one staged before). A new upload also ends the report of the last
    /// rollback.
    pub fn stage(&mut self, artifact: Artifact) -> Result<(), TransitionError> {
        if let Some(trial) = &self.trial {
            return Err(TransitionError::TrialRunning(trial.artifact.version.clone()));
        }
        self.staged = Some(artifact);
        self.last_rollback_reason = None;
        Ok(())
    }

    /// The staged binary goes on trial: the keeper starts it next, and it must confirm before `now + window`.
    pub fn activate(
        &mut self,
        now: SystemTime,
        window: Duration,
        baseline_failed: Vec<String>,
        from_version: String,
    ) -> Result<(), TransitionError> {
        if let Some(trial) = &self.trial {
            return Err(TransitionError::TrialRunning(trial.artifact.version.clone()));
        }
        let artifact = self.staged.take().ok_or(TransitionError::NothingStaged)?;
        self.trial = Some(Trial {
            artifact,
            deadline: unix(now + window),
            confirm_window_seconds: window.as_secs(),
            baseline_failed,
            from_version,
        });
        self.last_rollback_reason = None;
        Ok(())
    }

    /// The version on trial becomes the one that runs from now on.
    pub fn confirm(&mut self) -> Result<Artifact, TransitionError> {
        let trial = self.trial.take().ok_or(TransitionError::NoTrial)?;
        self.previous = self.current.take();
        self.previous_version = Some(trial.from_version);
        self.current = Some(trial.artifact.clone());
        Ok(trial.artifact)
    }

    /// Ends the trial: the keeper starts the version that ran before.
    pub fn roll_back(&mut self, reason: impl Into<String>) -> Result<Trial, TransitionError> {
        let trial = self.trial.take().ok_or(TransitionError::NoTrial)?;
        self.last_rollback_reason = Some(reason.into());
        Ok(trial)
    }

    /// After a confirmed update: back to the version before it (asked for by the owner).
    pub fn revert(&mut self) -> Result<String, TransitionError> {
        if self.trial.is_some() {
            self.roll_back("rolled back on request")?;
            return Ok("the version before the trial".into());
        }
        let version = self.previous_version.take().ok_or(TransitionError::NothingToRollBackTo)?;
        self.current = self.previous.take();
        self.last_rollback_reason = Some("rolled back on request".into());
        Ok(version)
    }

    /// The binary to start next (`installed` when none was uploaded), the artifact it is, and whether it is on
    /// trial.
    pub fn next_binary(&self, installed: &Path) -> (PathBuf, Option<Artifact>, bool) {
        match (&self.trial, &self.current) {
            (Some(trial), _) => (trial.artifact.path.clone(), Some(trial.artifact.clone()), true),
            (None, Some(current)) => (current.path.clone(), Some(current.clone()), false),
            (None, None) => (installed.to_path_buf(), None, false),
        }
    }

    /// Whether the trial's window has passed, `running` after the keeper started the version on trial. Measured
    /// on the monotonic clock: a router may boot with a wrong clock and step it when NTP answers, and a step must
    /// neither roll a good update back nor keep a bad one (the wall-clock `deadline` is only shown).
    pub fn trial_expired(&self, running: Duration) -> bool {
        self.trial.as_ref().is_some_and(|t| running >= Duration::from_secs(t.confirm_window_seconds))
    }

    /// Binaries under `update/bin` that nothing refers to any more.
    pub fn unreferenced(&self, binaries: &[PathBuf]) -> Vec<PathBuf> {
        let kept: Vec<&PathBuf> = [&self.current, &self.previous, &self.staged]
            .into_iter()
            .flatten()
            .map(|a| &a.path)
            .chain(self.trial.as_ref().map(|t| &t.artifact.path))
            .collect();
        binaries.iter().filter(|b| !kept.contains(b)).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(name: &str) -> Artifact {
        Artifact {
            version: name.into(),
            sha256: format!("{name:0>64}"),
            path: PathBuf::from(format!("/perm/update/bin/{name}")),
        }
    }

    #[test]
    fn stage_activate_confirm_then_revert() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let mut state = UpdateState::default();
        assert_eq!(
            state.activate(now, Duration::from_secs(120), vec![], "0.1.0".into()),
            Err(TransitionError::NothingStaged)
        );
        state.stage(artifact("v2")).expect("staged");
        state.activate(now, Duration::from_secs(120), vec!["uplink/dhcp6".into()], "0.1.0".into()).expect("on trial");
        assert_eq!(
            state.next_binary(Path::new("/usr/sbin/routerd")),
            (artifact("v2").path, Some(artifact("v2")), true)
        );
        assert!(!state.trial_expired(Duration::from_secs(119)));
        assert!(state.trial_expired(Duration::from_secs(120)));
        assert!(matches!(state.stage(artifact("v3")), Err(TransitionError::TrialRunning(_))));
        state.confirm().expect("confirmed");
        assert_eq!(
            state.next_binary(Path::new("/usr/sbin/routerd")),
            (artifact("v2").path, Some(artifact("v2")), false)
        );
        assert_eq!(state.revert(), Ok("0.1.0".into()));
        assert_eq!(state.next_binary(Path::new("/usr/sbin/routerd")).0, PathBuf::from("/usr/sbin/routerd"));
        assert_eq!(state.revert(), Err(TransitionError::NothingToRollBackTo));
    }

    #[test]
    fn a_clock_step_neither_ends_a_trial_nor_extends_it() {
        // Activated while the clock said 1970 (no NTP yet); NTP then steps it to 2026.
        let mut state = UpdateState::default();
        state.stage(artifact("v2")).expect("staged");
        state.activate(SystemTime::UNIX_EPOCH, Duration::from_secs(120), vec![], "0.1.0".into()).expect("on trial");
        let deadline = state.trial.as_ref().map(|t| t.deadline).unwrap_or_default();
        assert!(deadline < 1_000, "the wall-clock deadline is in 1970: {deadline}");
        // Only the time the trial has been running counts, whatever the wall clock says now.
        assert!(!state.trial_expired(Duration::from_secs(5)), "a step forward does not end the trial");
        assert!(state.trial_expired(Duration::from_secs(120)), "a step backward does not extend it");
    }

    #[test]
    fn a_rollback_returns_to_what_ran_and_says_why() {
        let now = SystemTime::UNIX_EPOCH;
        let mut state = UpdateState { current: Some(artifact("v2")), ..Default::default() };
        state.stage(artifact("v3")).expect("staged");
        state.activate(now, Duration::from_secs(5), vec![], "v2".into()).expect("trial");
        let trial = state.roll_back("exited at start with status 1").expect("rolled back");
        assert_eq!(trial.artifact, artifact("v3"));
        assert_eq!(state.next_binary(Path::new("/x")).1, Some(artifact("v2")));
        assert_eq!(state.last_rollback_reason.as_deref(), Some("exited at start with status 1"));
        assert_eq!(state.roll_back("again"), Err(TransitionError::NoTrial));
        let binaries = vec![artifact("v2").path, artifact("v3").path];
        assert_eq!(state.unreferenced(&binaries), vec![artifact("v3").path]);
    }

    #[test]
    fn the_state_file_round_trips_and_a_missing_one_is_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(UpdateState::load(dir.path()).expect("missing is fine"), UpdateState::default());
        let state = UpdateState { staged: Some(artifact("v9")), ..Default::default() };
        state.save(dir.path()).expect("saved");
        assert_eq!(UpdateState::load(dir.path()).expect("loaded"), state);
        std::fs::write(dir.path().join(STATE_FILE), "{broken").expect("write");
        assert!(UpdateState::load(dir.path()).is_err());
    }
}
