//! Swapping a checked backup into `--perm`, crash-safely: every file is first written to a staging directory
//! and flushed; then a journal naming what to install and what to remove is written atomically (the commit
//! point); then files are renamed into place and leftovers removed. A crash before the journal leaves `--perm`
//! as it was (the staging directory is removed at the next start); a crash after it is finished at the next
//! start ([`resume`]). Either way no file is ever half-written.

use std::{
    fs::{self, File, OpenOptions},
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::archive::{BackupError, Entry, files_under};
use crate::store::{self, Mode};

const STAGING: &str = ".restore-staging";
const JOURNAL: &str = ".restore-journal.json";
/// What a restore replaced or removed, kept until the restored tree proved itself.
const PREVIOUS: &str = ".restore-previous";
/// A restore on trial: the restarted routerd must come up healthy, or the previous tree comes back.
const TRIAL: &str = ".restore-trial.json";
/// The outcome of the last restore, for `rtrctl backup status` (a dot file: it describes this router's
/// history, and is never part of a backup).
pub const STATUS: &str = ".restore-status.json";
/// Starts of routerd that may fail after a restore before the previous tree comes back by itself.
pub const MAX_STARTS: u32 = 3;

/// How a restore is held to account: the checks that already failed before it (the restored tree is not held
/// to them) and how long the restarted routerd has to come up healthy.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TrialPlan {
    pub baseline_failed: Vec<String>,
    pub window_seconds: u64,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Journal {
    install: Vec<PathBuf>,
    remove: Vec<PathBuf>,
    #[serde(default)]
    trial: Option<TrialPlan>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RestoreTrial {
    pub installed: Vec<PathBuf>,
    pub plan: TrialPlan,
    /// How often routerd started since the restore was swapped in.
    pub starts: u32,
}

/// `.restore-status.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RestoreStatus {
    /// `on_trial`, `confirmed` or `rolled_back`.
    pub state: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub files: usize,
    #[serde(with = "time::serde::rfc3339")]
    pub at: time::OffsetDateTime,
}

fn write_error(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Write { path: path.to_path_buf(), source }
}

fn sync_dir(dir: &Path) {
    if let Ok(handle) = File::open(dir) {
        let _ = handle.sync_all();
    }
}

/// Replaces what `--perm` holds (except dot files and `update/`) with `entries`, which
/// [`super::archive::read`] checked, at once. Returns the number of files installed.
pub fn restore(perm: &Path, entries: &[Entry]) -> Result<usize, BackupError> {
    let journal = prepare(perm, entries, None)?;
    apply(perm, &journal)?;
    Ok(entries.len())
}

/// Checks `entries` as a restore would (staged in `scratch`, loaded as routerd loads `--perm`) without
/// installing them anywhere: for a restore that happens elsewhere (the recovery installer). `scratch` is removed.
pub fn check_entries(scratch: &Path, entries: &[Entry]) -> Result<(), BackupError> {
    if scratch.exists() {
        fs::remove_dir_all(scratch).map_err(write_error(scratch))?;
    }
    let result = stage(scratch, entries).and_then(|()| super::check::check_tree(scratch));
    let _ = fs::remove_dir_all(scratch);
    result
}

/// Stages `entries` and commits to installing them: the next [`resume`] (at routerd's next start, when no
/// service writes under `--perm`) swaps them in, on trial by `plan`. Returns the number of files staged.
pub fn restore_at_next_start(perm: &Path, entries: &[Entry], plan: TrialPlan) -> Result<usize, BackupError> {
    if perm.join(TRIAL).exists() {
        return Err(BackupError::TrialRunning);
    }
    prepare(perm, entries, Some(plan)).map(|_| entries.len())
}

fn prepare(perm: &Path, entries: &[Entry], trial: Option<TrialPlan>) -> Result<Journal, BackupError> {
    let staging = perm.join(STAGING);
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(write_error(&staging))?;
    }
    let _ = fs::remove_file(perm.join(JOURNAL));
    // Staged, then loaded as routerd will load it: what it would refuse is refused now, with nothing changed.
    let result = stage(&staging, entries).and_then(|()| super::check::check_tree(&staging));
    if let Err(error) = result {
        let _ = fs::remove_dir_all(&staging);
        return Err(error);
    }
    let keep: Vec<&PathBuf> = entries.iter().map(|e| &e.path).collect();
    let remove = files_under(perm)?.into_iter().filter(|p| !keep.contains(&p)).collect();
    let journal = Journal { install: entries.iter().map(|e| e.path.clone()).collect(), remove, trial };
    let text = serde_json::to_vec_pretty(&journal).map_err(|e| BackupError::Corrupt(e.to_string()))?;
    let journal_path = perm.join(JOURNAL);
    store::write_atomic(&journal_path, &text, Mode::Secret)
        .map_err(|e| BackupError::Write { path: journal_path, source: std::io::Error::other(e.to_string()) })?;
    Ok(journal)
}

/// Private keys, pairing codes and the restore's own records are readable by their owner only, whatever the
/// archive says.
fn private(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "key") || path.starts_with("tls/pairing")
}

fn stage(staging: &Path, entries: &[Entry]) -> Result<(), BackupError> {
    for entry in entries {
        let path = staging.join(&entry.path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(write_error(parent))?;
        }
        // Never more permissive than the archive says, and never executable or writable by others.
        let mode = if private(&entry.path) { 0o600 } else { entry.mode & 0o644 };
        let mut file =
            OpenOptions::new().write(true).create_new(true).mode(mode).open(&path).map_err(write_error(&path))?;
        file.write_all(&entry.data).map_err(write_error(&path))?;
        file.sync_all().map_err(write_error(&path))?;
    }
    Ok(())
}

/// Moves `perm/relative` (a file or a whole directory) into the previous tree, unless an interrupted run
/// already did; a second copy is dropped.
fn set_aside(perm: &Path, relative: &Path) -> Result<(), BackupError> {
    let path = perm.join(relative);
    let Ok(meta) = fs::symlink_metadata(&path) else { return Ok(()) };
    let aside = perm.join(PREVIOUS).join(relative);
    if fs::symlink_metadata(&aside).is_ok() {
        let removed = if meta.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
        return removed.map_err(write_error(&path));
    }
    if let Some(parent) = aside.parent() {
        fs::create_dir_all(parent).map_err(write_error(parent))?;
    }
    fs::rename(&path, &aside).map_err(write_error(&path))
}

/// Clears the way for a file at `perm/relative`: a file where one of its directories must be, or a directory
/// where it must be, goes aside.
fn make_way(perm: &Path, relative: &Path) -> Result<(), BackupError> {
    let mut ancestor = PathBuf::new();
    let components: Vec<_> = relative.components().collect();
    for component in &components[..components.len().saturating_sub(1)] {
        ancestor.push(component);
        if fs::symlink_metadata(perm.join(&ancestor)).is_ok_and(|m| !m.is_dir()) {
            set_aside(perm, &ancestor)?;
        }
    }
    set_aside(perm, relative)
}

fn apply(perm: &Path, journal: &Journal) -> Result<(), BackupError> {
    let staging = perm.join(STAGING);
    for relative in &journal.install {
        let from = staging.join(relative);
        let to = perm.join(relative);
        if !from.exists() {
            // Moved already by a run that was interrupted.
            continue;
        }
        make_way(perm, relative)?;
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).map_err(write_error(parent))?;
        }
        fs::rename(&from, &to).map_err(write_error(&to))?;
        if let Some(parent) = to.parent() {
            sync_dir(parent);
        }
    }
    for relative in &journal.remove {
        // A file that stood where the backup has a directory went aside already; the directory stays.
        if !journal.install.iter().any(|installed| installed.starts_with(relative)) {
            set_aside(perm, relative)?;
        }
    }
    let _ = fs::remove_dir_all(&staging);
    match &journal.trial {
        Some(plan) => {
            let trial = RestoreTrial { installed: journal.install.clone(), plan: plan.clone(), starts: 0 };
            store::write_json(&perm.join(TRIAL), &trial, Mode::Secret).map_err(|e| BackupError::Write {
                path: perm.join(TRIAL),
                source: std::io::Error::other(e.to_string()),
            })?;
            record(perm, "on_trial", "", journal.install.len());
        }
        None => {
            let _ = fs::remove_dir_all(perm.join(PREVIOUS));
        }
    }
    let journal_path = perm.join(JOURNAL);
    fs::remove_file(&journal_path).map_err(write_error(&journal_path))?;
    sync_dir(perm);
    Ok(())
}

fn record(perm: &Path, state: &str, reason: &str, files: usize) {
    let status = RestoreStatus {
        state: state.to_string(),
        reason: reason.to_string(),
        files,
        at: time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
    };
    if let Err(error) = store::write_json(&perm.join(STATUS), &status, Mode::Public) {
        tracing::error!("recording the restore's outcome: {error}");
    }
}

/// The outcome of the last restore, if there was one.
pub fn status(perm: &Path) -> Option<RestoreStatus> {
    store::read_json_optional(&perm.join(STATUS)).ok().flatten()
}

/// The restore on trial, if one is.
pub fn trial(perm: &Path) -> Option<RestoreTrial> {
    store::read_json_optional(&perm.join(TRIAL)).ok().flatten()
}

/// The restored tree proved itself: what it replaced is deleted.
pub fn confirm(perm: &Path) -> Result<usize, BackupError> {
    let trial = trial(perm).ok_or(BackupError::NoTrial)?;
    let previous = perm.join(PREVIOUS);
    if previous.exists() {
        fs::remove_dir_all(&previous).map_err(write_error(&previous))?;
    }
    fs::remove_file(perm.join(TRIAL)).map_err(write_error(&perm.join(TRIAL)))?;
    record(perm, "confirmed", "", trial.installed.len());
    sync_dir(perm);
    Ok(trial.installed.len())
}

/// Puts the tree from before the restore back (the restored files go), and records why. Safe to run again
/// after a crash part-way: the trial file goes last.
pub fn roll_back(perm: &Path, reason: &str) -> Result<(), BackupError> {
    let trial = trial(perm).ok_or(BackupError::NoTrial)?;
    for relative in &trial.installed {
        let path = perm.join(relative);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(write_error(&path)(e)),
        }
        // Directories the restore made, now empty, would clash with files coming back.
        let mut dir = relative.parent();
        while let Some(parent) = dir.filter(|d| !d.as_os_str().is_empty()) {
            if fs::remove_dir(perm.join(parent)).is_err() {
                break;
            }
            dir = parent.parent();
        }
    }
    let previous = perm.join(PREVIOUS);
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let Ok(entries) = fs::read_dir(previous.join(&relative)) else { continue };
        for entry in entries.flatten() {
            let relative = relative.join(entry.file_name());
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pending.push(relative);
                continue;
            }
            let to = perm.join(&relative);
            if let Some(parent) = to.parent() {
                fs::create_dir_all(parent).map_err(write_error(parent))?;
            }
            fs::rename(entry.path(), &to).map_err(write_error(&to))?;
        }
    }
    let _ = fs::remove_dir_all(&previous);
    fs::remove_file(perm.join(TRIAL)).map_err(write_error(&perm.join(TRIAL)))?;
    record(perm, "rolled_back", reason, trial.installed.len());
    sync_dir(perm);
    tracing::error!("rolled the restore back: {reason}");
    Ok(())
}

/// At each start, before anything reads `--perm`: counts the starts of a restore on trial, and rolls it back
/// when routerd failed to come up [`MAX_STARTS`] times with it. Returns what happened, for the log.
pub fn on_start(perm: &Path) -> Option<String> {
    let mut trial = trial(perm)?;
    trial.starts += 1;
    if trial.starts > MAX_STARTS {
        let reason = format!("routerd did not come up healthy in {MAX_STARTS} starts after the restore");
        return Some(match roll_back(perm, &reason) {
            Ok(()) => format!("{reason}: the previous files are back"),
            Err(error) => format!("{reason}, and rolling back failed: {error}"),
        });
    }
    if let Err(error) = store::write_json(&perm.join(TRIAL), &trial, Mode::Secret) {
        tracing::error!("counting starts of the restore on trial: {error}");
    }
    Some(format!(
        "a restore is on trial (start {} of {MAX_STARTS}): it must come up healthy within {} s",
        trial.starts, trial.plan.window_seconds
    ))
}

/// At start: finishes a restore whose journal was written (asked for before a restart, or interrupted), or throws away one that never got that far.
/// Returns what happened, for the log.
pub fn resume(perm: &Path) -> Option<String> {
    let journal_path = perm.join(JOURNAL);
    match store::read_json_optional::<Journal>(&journal_path) {
        Ok(Some(journal)) => Some(match apply(perm, &journal) {
            Ok(()) => format!("finished a restore: {} files from the backup are in place", journal.install.len()),
            Err(error) => format!("could not finish an interrupted restore: {error}"),
        }),
        Ok(None) if perm.join(STAGING).exists() => {
            let _ = fs::remove_dir_all(perm.join(STAGING));
            Some("removed a restore that was interrupted before it changed anything".to_string())
        }
        Ok(None) => None,
        Err(error) => Some(format!("{}: {error}; the restore journal is left for a person to look at", JOURNAL)),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::backup::archive::{Limits, create, read};

    fn tree(perm: &Path) -> Vec<(String, Vec<u8>)> {
        files_under(perm)
            .expect("listing")
            .into_iter()
            .map(|p| (p.display().to_string(), fs::read(perm.join(&p)).expect("read")))
            .collect()
    }

    /// A router's --perm (a CA, a lease, configuration) and a backup of it.
    fn setup() -> (tempfile::TempDir, Vec<u8>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let perm = dir.path();
        crate::pki::Authority::load_or_create(crate::pki::PkiPaths::new(perm), "router").expect("CA");
        fs::create_dir_all(perm.join("dhcp4d")).expect("mkdir");
        fs::write(perm.join("dhcp4d/leases.json"), r#"[{"addr":"192.0.2.100","hardware_addr":"02:00:00:00:02:01"}]"#)
            .expect("write");
        fs::write(perm.join("routerd.json"), r#"{"hostname":"before"}"#).expect("write");
        let archive = create(perm).expect("backup");
        (dir, archive.bytes)
    }

    fn plan() -> TrialPlan {
        TrialPlan { baseline_failed: vec!["uplink/dhcp6".into()], window_seconds: 60 }
    }

    #[test]
    fn a_restore_gives_back_the_identical_tree_and_removes_what_came_later() {
        let (dir, backup) = setup();
        let perm = dir.path();
        let before = tree(perm);
        fs::write(perm.join("routerd.json"), r#"{"hostname":"after"}"#).expect("write");
        fs::write(perm.join("portforwardings.json"), r#"{"forwardings":[]}"#).expect("write");
        fs::create_dir_all(perm.join("update")).expect("mkdir");
        fs::write(perm.join("update/state.json"), "{}").expect("write");
        let entries = read(&backup, Limits::default()).expect("valid");
        assert_eq!(restore(perm, &entries).expect("restored"), entries.len());
        assert_eq!(tree(perm), before);
        assert!(perm.join("update/state.json").exists(), "update/ is not touched");
        assert!(!perm.join(STAGING).exists() && !perm.join(JOURNAL).exists() && !perm.join(PREVIOUS).exists());
    }

    #[test]
    fn an_interrupted_restore_is_finished_or_forgotten_at_the_next_start() {
        let (dir, backup) = setup();
        let perm = dir.path();
        let before = tree(perm);
        fs::write(perm.join("routerd.json"), r#"{"hostname":"after"}"#).expect("write");
        let after = tree(perm);
        let entries = read(&backup, Limits::default()).expect("valid");

        // Crash while staging: nothing changed, the staging directory goes away.
        stage(&perm.join(STAGING), &entries[..1]).expect("staged");
        assert_eq!(resume(perm).as_deref(), Some("removed a restore that was interrupted before it changed anything"));
        assert_eq!(tree(perm), after);

        // Crash after the journal, with one file already moved: the next start finishes the job.
        stage(&perm.join(STAGING), &entries).expect("staged");
        let journal =
            Journal { install: entries.iter().map(|e| e.path.clone()).collect(), remove: vec![], trial: None };
        store::write_json(&perm.join(JOURNAL), &journal, Mode::Secret).expect("journal");
        let first = &entries[0].path;
        make_way(perm, first).expect("aside");
        fs::rename(perm.join(STAGING).join(first), perm.join(first)).expect("one moved");
        assert!(resume(perm).is_some_and(|r| r.starts_with("finished a restore")));
        assert_eq!(tree(perm), before);
        assert_eq!(resume(perm), None);
    }

    #[test]
    fn a_restore_for_the_next_start_changes_nothing_until_then() {
        let (dir, backup) = setup();
        let perm = dir.path();
        let before = tree(perm);
        fs::write(perm.join("routerd.json"), r#"{"hostname":"after"}"#).expect("write");
        fs::write(perm.join("extra.json"), "{}").expect("write");
        let after = tree(perm);
        let entries = read(&backup, Limits::default()).expect("valid");
        assert_eq!(restore_at_next_start(perm, &entries, plan()).expect("staged"), entries.len());
        assert_eq!(tree(perm), after);
        // The daemon writes a file meanwhile; the restore still wins.
        fs::write(perm.join("routerd.json"), r#"{"hostname":"meanwhile"}"#).expect("write");
        assert!(resume(perm).is_some());
        assert_eq!(tree(perm), before);
    }

    #[test]
    fn a_tree_routerd_would_refuse_changes_nothing() {
        let (dir, _) = setup();
        let perm = dir.path();
        let before = tree(perm);
        let mut entries = read(&create(perm).expect("backup").bytes, Limits::default()).expect("valid");
        entries.push(Entry { path: "tls/revoked.json".into(), mode: 0o644, data: b"[1, 2]".to_vec() });
        let error = restore_at_next_start(perm, &entries, plan()).expect_err("refused").to_string();
        assert!(error.starts_with("tls/revoked.json: routerd would not start"), "{error}");
        assert_eq!(tree(perm), before);
        assert!(!perm.join(STAGING).exists() && !perm.join(JOURNAL).exists());
    }

    #[test]
    fn on_trial_the_previous_tree_comes_back_exactly_or_goes_when_confirmed() {
        let (dir, backup) = setup();
        let perm = dir.path();
        let entries = read(&backup, Limits::default()).expect("valid");
        // What the router has now, with type clashes against the backup: a file where the backup has a
        // directory, a directory where it has a file.
        fs::remove_dir_all(perm.join("dhcp4d")).expect("rm");
        fs::write(perm.join("dhcp4d"), "a file in the way").expect("write");
        fs::remove_file(perm.join("routerd.json")).expect("rm");
        fs::create_dir_all(perm.join("routerd.json")).expect("mkdir");
        fs::write(perm.join("routerd.json/odd"), "x").expect("write");
        fs::write(perm.join("later.json"), "{}").expect("write");
        let now = tree(perm);

        restore_at_next_start(perm, &entries, plan()).expect("staged");
        assert!(resume(perm).is_some_and(|r| r.starts_with("finished")));
        assert_eq!(tree(perm).len(), entries.len(), "the backup's tree is in place: {:?}", tree(perm));
        assert_eq!(status(perm).map(|s| s.state), Some("on_trial".into()));
        assert!(on_start(perm).is_some_and(|m| m.contains("start 1 of 3")));
        roll_back(perm, "not healthy within 60 s").expect("rolled back");
        assert_eq!(tree(perm), now, "exactly the tree from before the restore");
        let status = status(perm).expect("status");
        assert_eq!((status.state.as_str(), status.reason.as_str()), ("rolled_back", "not healthy within 60 s"));
        assert!(trial(perm).is_none() && !perm.join(PREVIOUS).exists());

        let (dir, backup) = setup();
        let perm = dir.path();
        let before = tree(perm);
        fs::write(perm.join("routerd.json"), r#"{"hostname":"after"}"#).expect("write");
        restore_at_next_start(perm, &read(&backup, Limits::default()).expect("valid"), plan()).expect("staged");
        resume(perm);
        confirm(perm).expect("confirmed");
        assert_eq!(tree(perm), before);
        assert!(!perm.join(PREVIOUS).exists() && trial(perm).is_none());
        assert_eq!(self::status(perm).map(|s| s.state), Some("confirmed".into()));
    }

    #[test]
    fn a_router_that_keeps_failing_to_start_gets_its_previous_tree_back() {
        let (dir, backup) = setup();
        let perm = dir.path();
        fs::write(perm.join("routerd.json"), r#"{"hostname":"after"}"#).expect("write");
        let now = tree(perm);
        restore_at_next_start(perm, &read(&backup, Limits::default()).expect("valid"), plan()).expect("staged");
        resume(perm);
        for start in 1..=MAX_STARTS {
            assert!(on_start(perm).is_some_and(|m| m.contains(&format!("start {start} of"))));
        }
        assert!(on_start(perm).is_some_and(|m| m.contains("previous files are back")));
        assert_eq!(tree(perm), now);
        assert_eq!(on_start(perm), None, "no trial any more");
    }

    #[test]
    fn private_keys_are_written_0600_whatever_the_archive_says() {
        let (dir, backup) = setup();
        let perm = dir.path();
        let mut entries = read(&backup, Limits::default()).expect("valid");
        for entry in &mut entries {
            entry.mode = 0o644;
        }
        restore(perm, &entries).expect("restored");
        let mode = |p: &str| fs::metadata(perm.join(p)).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode("tls/ca.key"), 0o600);
        assert_eq!(mode("routerd.json"), 0o644);
    }
}
