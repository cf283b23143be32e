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

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Journal {
    install: Vec<PathBuf>,
    remove: Vec<PathBuf>,
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
    let journal = prepare(perm, entries)?;
    apply(perm, &journal)?;
    Ok(entries.len())
}

/// Stages `entries` and commits to installing them: the next [`resume`] (at routerd's next start, when no
/// service writes under `--perm`) swaps them in. Returns the number of files staged.
pub fn restore_at_next_start(perm: &Path, entries: &[Entry]) -> Result<usize, BackupError> {
    prepare(perm, entries).map(|_| entries.len())
}

fn prepare(perm: &Path, entries: &[Entry]) -> Result<Journal, BackupError> {
    let staging = perm.join(STAGING);
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(write_error(&staging))?;
    }
    let _ = fs::remove_file(perm.join(JOURNAL));
    let result = stage(&staging, entries);
    if let Err(error) = result {
        let _ = fs::remove_dir_all(&staging);
        return Err(error);
    }
    let keep: Vec<&PathBuf> = entries.iter().map(|e| &e.path).collect();
    let remove = files_under(perm)?.into_iter().filter(|p| !keep.contains(&p)).collect();
    let journal = Journal { install: entries.iter().map(|e| e.path.clone()).collect(), remove };
    let text = serde_json::to_vec_pretty(&journal).map_err(|e| BackupError::Corrupt(e.to_string()))?;
    let journal_path = perm.join(JOURNAL);
    store::write_atomic(&journal_path, &text, Mode::Secret)
        .map_err(|e| BackupError::Write { path: journal_path, source: std::io::Error::other(e.to_string()) })?;
    Ok(journal)
}

fn stage(staging: &Path, entries: &[Entry]) -> Result<(), BackupError> {
    for entry in entries {
        let path = staging.join(&entry.path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(write_error(parent))?;
        }
        // Never more permissive than the archive says, and never executable or writable by others.
        let mode = entry.mode & 0o644;
        let mut file =
            OpenOptions::new().write(true).create_new(true).mode(mode).open(&path).map_err(write_error(&path))?;
        file.write_all(&entry.data).map_err(write_error(&path))?;
        file.sync_all().map_err(write_error(&path))?;
    }
    Ok(())
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
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).map_err(write_error(parent))?;
        }
        fs::rename(&from, &to).map_err(write_error(&to))?;
        if let Some(parent) = to.parent() {
            sync_dir(parent);
        }
    }
    for relative in &journal.remove {
        let path = perm.join(relative);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(write_error(&path)(e)),
        }
    }
    let _ = fs::remove_dir_all(&staging);
    let journal_path = perm.join(JOURNAL);
    fs::remove_file(&journal_path).map_err(write_error(&journal_path))?;
    sync_dir(perm);
    Ok(())
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
    use super::*;
    use crate::backup::archive::{Limits, create, read};

    fn tree(perm: &Path) -> Vec<(String, Vec<u8>)> {
        files_under(perm)
            .expect("listing")
            .into_iter()
            .map(|p| (p.display().to_string(), fs::read(perm.join(&p)).expect("read")))
            .collect()
    }

    fn setup() -> (tempfile::TempDir, Vec<u8>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let perm = dir.path();
        fs::create_dir_all(perm.join("dhcp4d")).expect("mkdir");
        fs::write(perm.join("dhcp4d/leases.json"), r#"[{"addr":"192.0.2.100"}]"#).expect("write");
        fs::write(perm.join("routerd.json"), r#"{"hostname":"before"}"#).expect("write");
        let archive = create(perm).expect("backup");
        (dir, archive.bytes)
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
        assert_eq!(restore(perm, &entries).expect("restored"), 2);
        assert_eq!(tree(perm), before);
        assert!(perm.join("update/state.json").exists(), "update/ is not touched");
        assert!(!perm.join(STAGING).exists() && !perm.join(JOURNAL).exists());
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
        let journal = Journal { install: entries.iter().map(|e| e.path.clone()).collect(), remove: vec![] };
        store::write_json(&perm.join(JOURNAL), &journal, Mode::Secret).expect("journal");
        fs::rename(perm.join(STAGING).join(&entries[0].path), perm.join(&entries[0].path)).expect("one moved");
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
        assert_eq!(restore_at_next_start(perm, &entries).expect("staged"), 2);
        assert_eq!(tree(perm), after);
        // The daemon writes a file meanwhile; the restore still wins.
        fs::write(perm.join("routerd.json"), r#"{"hostname":"meanwhile"}"#).expect("write");
        assert!(resume(perm).is_some());
        assert_eq!(tree(perm), before);
    }
}
