//! An append-only journal of JSON lines under `--perm`, for state that changes too often to rewrite a whole file
//! per change (the DHCP server's leases). Each append is flushed with `fdatasync` before it returns, so a change
//! is durable once [`Journal::append`] is back; a crash mid-append leaves at most one torn last line, which
//! [`read_lines`] reports and skips. The owner folds the journal into its regular file (written atomically by
//! [`super::write_atomic`]) from time to time: [`Journal::rotate`] starts a new journal and keeps the old one as
//! `NAME.1` until that file is safely written, then [`remove`] drops it.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use super::{StoreError, parent, sync_dir};

pub struct Journal {
    path: PathBuf,
    file: File,
    entries: usize,
}

/// The journal rotated out by [`Journal::rotate`], waiting for its owner's compaction.
pub fn rotated_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".1");
    PathBuf::from(name)
}

impl Journal {
    /// Starts an empty journal at `path` (replacing what was there: the caller folded it in first).
    pub fn create(path: &Path) -> Result<Journal, StoreError> {
        let dir = parent(path);
        fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o644)
            .open(path)
            .map_err(|e| StoreError::io(path, e))?;
        file.sync_all().map_err(|e| StoreError::io(path, e))?;
        sync_dir(dir)?;
        Ok(Journal { path: path.to_path_buf(), file, entries: 0 })
    }

    /// Appends `lines` (each ending in `\n`, `count` of them) and waits until they are on disk.
    pub fn append(&mut self, lines: &[u8], count: usize) -> Result<(), StoreError> {
        self.file.write_all(lines).map_err(|e| StoreError::io(&self.path, e))?;
        self.file.sync_data().map_err(|e| StoreError::io(&self.path, e))?;
        self.entries += count;
        Ok(())
    }

    /// Entries appended since this journal was started.
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// Moves this journal to `NAME.1` and starts a new one; returns the old one's path. Refuses while an older
    /// `NAME.1` is still there (its compaction has not finished), which would otherwise be lost.
    pub fn rotate(&mut self) -> Result<PathBuf, StoreError> {
        let rotated = rotated_path(&self.path);
        if rotated.exists() {
            return Err(StoreError::io(
                &rotated,
                io::Error::new(io::ErrorKind::AlreadyExists, "the previous journal is not folded in yet"),
            ));
        }
        fs::rename(&self.path, &rotated).map_err(|e| StoreError::io(&self.path, e))?;
        *self = Journal::create(&self.path)?;
        Ok(rotated)
    }
}

/// The journal's complete lines, in order, and how many bytes of a torn last line (a crash mid-append) were left
/// out. A missing journal has no lines.
pub fn read_lines(path: &Path) -> Result<(Vec<String>, usize), StoreError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(StoreError::io(path, e)),
    };
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |at| at + 1);
    let lines = String::from_utf8_lossy(&bytes[..complete]).lines().map(str::to_string).collect();
    Ok((lines, bytes.len() - complete))
}

/// Removes a journal that was folded in (a missing one is fine).
pub fn remove(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(parent(path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_survive_rotation_and_a_torn_last_line_is_left_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/leases.journal");
        let mut journal = Journal::create(&path).expect("create");
        journal.append(b"one\ntwo\n", 2).expect("append");
        assert_eq!(journal.entries(), 2);
        let rotated = journal.rotate().expect("rotate");
        assert_eq!(rotated, dir.path().join("sub/leases.journal.1"));
        assert!(journal.rotate().is_err(), "the older journal is not folded in yet");
        journal.append(b"three\n", 1).expect("append");
        assert_eq!(read_lines(&rotated).expect("read"), (vec!["one".to_string(), "two".to_string()], 0));
        // A crash mid-append.
        fs::OpenOptions::new().append(true).open(&path).and_then(|mut f| f.write_all(b"{\"tor")).expect("tear");
        assert_eq!(read_lines(&path).expect("read"), (vec!["three".to_string()], 5));
        remove(&rotated).expect("remove");
        remove(&rotated).expect("removing twice is fine");
        assert_eq!(read_lines(&rotated).expect("read"), (Vec::new(), 0));
    }
}
