//! The only place that writes files under `--perm`.
//!
//! Every write is atomic: the new content goes to a temporary file in the same directory, is flushed to disk,
//! renamed over the old file, and the directory entry is flushed too. A crash at any moment leaves either the
//! old or the new complete file, never a torn or empty one.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use serde::{Serialize, de::DeserializeOwned};

pub mod journal;

/// File permissions for secrets (private keys) and for everything else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// 0644: readable by everyone, as router7's files are.
    Public,
    /// 0600: private keys and other secrets.
    Secret,
}

impl Mode {
    fn bits(self) -> u32 {
        match self {
            Mode::Public => 0o644,
            Mode::Secret => 0o600,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: {message}")]
    Json { path: PathBuf, message: String },
}

impl StoreError {
    fn io(path: &Path, source: io::Error) -> Self {
        StoreError::Io { path: path.to_path_buf(), source }
    }

    /// True when the error means the file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// Writes `contents` to `path` atomically, creating parent directories as needed.
pub fn write_atomic(path: &Path, contents: &[u8], mode: Mode) -> Result<(), StoreError> {
    let dir = parent(path);
    fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
    let file_name = path
        .file_name()
        .ok_or_else(|| StoreError::io(path, io::Error::new(io::ErrorKind::InvalidInput, "not a file path")))?;
    // A unique temporary name per process and write, so concurrent writers never share a temporary file.
    let temp = dir.join(format!(".{}.tmp-{}-{}", file_name.to_string_lossy(), std::process::id(), unique_suffix()));
    let result = write_and_rename(&temp, path, dir, contents, mode);
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

fn write_and_rename(temp: &Path, path: &Path, dir: &Path, contents: &[u8], mode: Mode) -> Result<(), StoreError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode.bits())
        .open(temp)
        .map_err(|e| StoreError::io(temp, e))?;
    file.write_all(contents).map_err(|e| StoreError::io(temp, e))?;
    file.sync_all().map_err(|e| StoreError::io(temp, e))?;
    drop(file);
    fs::rename(temp, path).map_err(|e| StoreError::io(path, e))?;
    sync_dir(dir)
}

/// The directory `path` is in (`.` for a bare file name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Flushes a directory's entries (a rename, a new or removed file) to disk.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| StoreError::io(dir, e))
}

fn unique_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// Serialises `value` as pretty-printed JSON (human-readable, like router7's files) and writes it atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T, mode: Mode) -> Result<(), StoreError> {
    let mut bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| StoreError::Json { path: path.to_path_buf(), message: e.to_string() })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes, mode)
}

/// Reads and parses a JSON file. Errors name the file and, for malformed content, the line and column.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, StoreError> {
    let bytes = fs::read(path).map_err(|e| StoreError::io(path, e))?;
    parse_json(path, &bytes)
}

/// Like [`read_json`], but a missing file is `Ok(None)`.
pub fn read_json_optional<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StoreError> {
    match read_json(path) {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Parses JSON that claims to come from `path`.
pub fn parse_json<T: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Json { path: path.to_path_buf(), message: describe_json_error(&e) })
}

fn describe_json_error(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match error.classify() {
        Category::Eof if error.line() <= 1 && error.column() == 0 => return "the file is empty".to_string(),
        Category::Eof => "the file ends in the middle of a value",
        Category::Syntax => "malformed JSON",
        Category::Data => "unexpected content",
        Category::Io => "read error",
    };
    // serde_json's message already ends with "at line L column C".
    format!("{what}: {error}")
}

/// Reads a file that routerd wrote; a missing file is `Ok(None)`.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io(path, e)),
    }
}

/// Removes temporary files that writers killed mid-write left behind under `root` (recursively). A file is
/// only removed when the process that made it (its PID is in the name) is gone, so a concurrent `routerd pki`
/// command keeps its own. Returns how many were removed.
pub fn remove_stale_temp_files(root: &Path) -> usize {
    let mut removed = 0;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                dirs.push(path);
            } else if let Some(pid) = temp_file_owner(&entry.file_name().to_string_lossy())
                && !crate::sys::process::is_alive(pid)
                && fs::remove_file(&path).is_ok()
            {
                tracing::info!("removed {}, left by an interrupted write", path.display());
                removed += 1;
            }
        }
    }
    removed
}

/// The PID in a temporary file name made by [`write_atomic`] (`.NAME.tmp-PID-N`).
fn temp_file_owner(file_name: &str) -> Option<i32> {
    let rest = file_name.strip_prefix('.')?;
    let (_, suffix) = rest.rsplit_once(".tmp-")?;
    let (pid, counter) = suffix.split_once('-')?;
    counter.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// An exclusive advisory lock on a directory, for read-modify-write of files that several processes change
/// (the daemon and `routerd pki` commands). Released when dropped.
pub struct DirLock {
    _file: File,
}

/// Blocks until this process holds the lock of `dir` (the file `dir/.lock`).
pub fn lock_dir(dir: &Path) -> Result<DirLock, StoreError> {
    fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
    let path = dir.join(".lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| StoreError::io(&path, e))?;
    crate::sys::files::lock_exclusive(&file).map_err(|e| StoreError::io(&path, e))?;
    Ok(DirLock { _file: file })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Sample {
        name: String,
        count: u32,
    }

    #[test]
    fn round_trip_and_no_temporary_files_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/dir/sample.json");
        let value = Sample { name: "a".into(), count: 3 };
        write_json(&path, &value, Mode::Public).expect("write");
        assert_eq!(read_json::<Sample>(&path).expect("read"), value);
        let entries: Vec<_> = fs::read_dir(path.parent().expect("parent"))
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(entries, vec![std::ffi::OsString::from("sample.json")]);
    }

    #[test]
    fn secrets_are_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key.pem");
        write_atomic(&path, b"secret", Mode::Secret).expect("write");
        let mode = fs::metadata(&path).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn malformed_json_names_file_and_position() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("interfaces.json");
        fs::write(&path, "{\n  \"name\": \"a\",\n  \"count\": 3,,\n}").expect("write");
        let message = read_json::<Sample>(&path).expect_err("must fail").to_string();
        assert!(message.contains("interfaces.json"), "{message}");
        assert!(message.contains("malformed JSON"), "{message}");
        assert!(message.contains("line 3"), "{message}");
    }

    #[test]
    fn empty_and_truncated_files_are_explained() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.json");
        fs::write(&path, "").expect("write");
        let message = read_json::<Sample>(&path).expect_err("empty").to_string();
        assert!(message.ends_with("the file is empty"), "{message}");
        fs::write(&path, "{\"name\": \"a\"").expect("write");
        let message = read_json::<Sample>(&path).expect_err("truncated").to_string();
        assert!(message.contains("ends in the middle"), "{message}");
        fs::write(&path, "{\"name\": 5, \"count\": 1}").expect("write");
        let message = read_json::<Sample>(&path).expect_err("wrong type").to_string();
        assert!(message.contains("unexpected content"), "{message}");
    }

    #[test]
    fn stale_temporary_files_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("dhcp4d");
        fs::create_dir_all(&sub).expect("mkdir");
        // PID 0x7fffffff cannot exist (above the kernel's pid_max); our own PID is alive.
        let stale = sub.join(".leases.json.tmp-2147483647-3");
        let live = sub.join(format!(".leases.json.tmp-{}-4", std::process::id()));
        let unrelated = sub.join(".hidden.tmp-x");
        for path in [&stale, &live, &unrelated] {
            fs::write(path, "partial").expect("write");
        }
        assert_eq!(remove_stale_temp_files(dir.path()), 1);
        assert!(!stale.exists());
        assert!(live.exists());
        assert!(unrelated.exists());
    }

    #[test]
    fn missing_file_is_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let value: Option<Sample> = read_json_optional(&dir.path().join("nope.json")).expect("ok");
        assert!(value.is_none());
    }

    #[test]
    fn failed_write_keeps_old_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.json");
        write_atomic(&path, b"old", Mode::Public).expect("write");
        // Tests run as root, so permissions cannot make a write fail; a parent that is a file does.
        let bad = path.join("child");
        assert!(write_atomic(&bad, b"new", Mode::Public).is_err());
        assert_eq!(fs::read(&path).expect("read"), b"old");
    }
}
