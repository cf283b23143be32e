//! The backup archive: a gzip'd tar of the regular files under `--perm`. Reading one checks everything before
//! anything is written: paths stay inside `--perm`, only regular files and directories, sizes and counts within
//! limits, JSON files parse.
//!
//! Left out (neither backed up nor restored): dot files (locks, temporary files, a restore in progress) and
//! `update/` (staged routerd binaries: large, and not configuration).

use std::{
    fs,
    io::{Read, Write},
    path::{Component, Path, PathBuf},
};

use flate2::{Compression, read::GzDecoder, write::GzEncoder};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("building the archive: {0}")]
    Build(std::io::Error),
    #[error("not a gzip'd tar archive: {0}")]
    Corrupt(String),
    #[error("{path:?}: a path outside --perm or not a plain relative path; refused")]
    UnsafePath { path: String },
    #[error("{path}: a {kind}; a backup holds only regular files and directories")]
    Unsupported { path: String, kind: String },
    #[error("{path}: {size} bytes, more than the {limit} a file may have")]
    FileTooLarge { path: String, size: u64, limit: u64 },
    #[error("the archive unpacks to more than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("more than {limit} files")]
    TooManyFiles { limit: usize },
    #[error("{path} appears twice")]
    Duplicate { path: String },
    #[error("{path}: routerd does not restore this (dot files and update/ stay as they are)")]
    Excluded { path: String },
    #[error("{path}: not valid JSON: {message}")]
    BadJson { path: String, message: String },
    #[error("the archive holds no files")]
    Empty,
}

/// Sanity limits for an archive to restore.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_file: u64,
    pub max_total: u64,
    pub max_files: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_file: 16 << 20, max_total: 128 << 20, max_files: 10_000 }
    }
}

/// A file of the archive: its path relative to `--perm`, its permission bits and contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub path: PathBuf,
    pub mode: u32,
    pub data: Vec<u8>,
}

/// A built archive.
#[derive(Clone, Debug)]
pub struct Archive {
    pub bytes: Vec<u8>,
    pub files: u32,
}

/// Whether a path relative to `--perm` is left out of backups.
pub fn excluded(relative: &Path) -> bool {
    let mut components = relative.components();
    let first = components.clone().next();
    matches!(first, Some(Component::Normal(name)) if name == "update")
        || components.any(|c| matches!(c, Component::Normal(name) if name.to_string_lossy().starts_with('.')))
}

/// Every regular file under `perm` that belongs in a backup, relative, sorted.
pub fn files_under(perm: &Path) -> Result<Vec<PathBuf>, BackupError> {
    let mut files = Vec::new();
    let mut dirs = vec![PathBuf::new()];
    while let Some(relative) = dirs.pop() {
        let dir = perm.join(&relative);
        let entries = fs::read_dir(&dir).map_err(|source| BackupError::Read { path: dir.clone(), source })?;
        for entry in entries {
            let entry = entry.map_err(|source| BackupError::Read { path: dir.clone(), source })?;
            let path = relative.join(entry.file_name());
            if excluded(&path) {
                continue;
            }
            let kind = entry.file_type().map_err(|source| BackupError::Read { path: path.clone(), source })?;
            if kind.is_dir() {
                dirs.push(path);
            } else if kind.is_file() {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// A tar.gz of everything under `perm` that belongs in a backup.
pub fn create(perm: &Path) -> Result<Archive, BackupError> {
    use std::os::unix::fs::PermissionsExt;
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    let mut files = 0u32;
    for relative in files_under(perm)? {
        let path = perm.join(&relative);
        let data = fs::read(&path).map_err(|source| BackupError::Read { path: path.clone(), source })?;
        let mode = fs::metadata(&path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0o600);
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mtime(
            fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
                .unwrap_or(0),
        );
        builder.append_data(&mut header, &relative, data.as_slice()).map_err(BackupError::Build)?;
        files += 1;
    }
    let encoder = builder.into_inner().map_err(BackupError::Build)?;
    let bytes = encoder.finish().map_err(BackupError::Build)?;
    Ok(Archive { bytes, files })
}

/// A path from an archive, if it is plainly relative and stays inside `--perm`.
fn safe_path(raw: &[u8]) -> Result<PathBuf, BackupError> {
    let text =
        std::str::from_utf8(raw).map_err(|_| BackupError::UnsafePath { path: String::from_utf8_lossy(raw).into() })?;
    let unsafe_path = || BackupError::UnsafePath { path: text.to_string() };
    let path = Path::new(text.trim_end_matches('/'));
    if text.is_empty() || text.contains('\0') {
        return Err(unsafe_path());
    }
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return Err(unsafe_path()),
        }
    }
    if clean.as_os_str().is_empty() { Err(unsafe_path()) } else { Ok(clean) }
}

/// Unpacks `bytes` in memory and checks every entry; nothing touches the disk.
pub fn read(bytes: &[u8], limits: Limits) -> Result<Vec<Entry>, BackupError> {
    let mut archive = tar::Archive::new(GzDecoder::new(bytes));
    let mut entries: Vec<Entry> = Vec::new();
    let mut total = 0u64;
    let corrupt = |e: std::io::Error| BackupError::Corrupt(e.to_string());
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let raw_path = entry.path_bytes().into_owned();
        let path = safe_path(&raw_path)?;
        let shown = path.display().to_string();
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        if !(kind.is_file() || kind == tar::EntryType::Continuous) {
            let kind = match kind {
                tar::EntryType::Symlink => "symbolic link".to_string(),
                tar::EntryType::Link => "hard link".to_string(),
                tar::EntryType::Char | tar::EntryType::Block => "device".to_string(),
                tar::EntryType::Fifo => "FIFO".to_string(),
                other => format!("{other:?} entry"),
            };
            return Err(BackupError::Unsupported { path: shown, kind });
        }
        if excluded(&path) {
            return Err(BackupError::Excluded { path: shown });
        }
        let size = entry.header().size().map_err(corrupt)?;
        if size > limits.max_file {
            return Err(BackupError::FileTooLarge { path: shown, size, limit: limits.max_file });
        }
        total += size;
        if total > limits.max_total {
            return Err(BackupError::TooLarge { limit: limits.max_total });
        }
        if entries.len() >= limits.max_files {
            return Err(BackupError::TooManyFiles { limit: limits.max_files });
        }
        if entries.iter().any(|e| e.path == path) {
            return Err(BackupError::Duplicate { path: shown });
        }
        let mut data = Vec::with_capacity(size as usize);
        // The header's size was checked; take no more than it even if the stream has more.
        entry.by_ref().take(limits.max_file + 1).read_to_end(&mut data).map_err(corrupt)?;
        if path.extension().is_some_and(|e| e == "json")
            && let Err(error) = serde_json::from_slice::<serde_json::Value>(&data)
        {
            return Err(BackupError::BadJson { path: shown, message: error.to_string() });
        }
        let mode = entry.header().mode().map_err(corrupt)? & 0o777;
        entries.push(Entry { path, mode, data });
    }
    // The rest of the stream (tar padding, the gzip trailer with its CRC): a cut or altered archive fails here.
    let mut rest = Vec::new();
    archive.into_inner().take(1 << 20).read_to_end(&mut rest).map_err(corrupt)?;
    if entries.is_empty() {
        return Err(BackupError::Empty);
    }
    Ok(entries)
}

/// A tar.gz of arbitrary entries, for tests (including malicious ones that [`create`] would never make).
pub fn build_raw(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for (path, kind, data) in entries {
        let mut header = tar::Header::new_gnu();
        // Written straight into the header, so `..` and absolute paths survive (the crate's setters refuse them).
        let name = &mut header.as_old_mut().name;
        let bytes = path.as_bytes();
        name[..bytes.len().min(100)].copy_from_slice(&bytes[..bytes.len().min(100)]);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(*kind);
        if *kind == tar::EntryType::Symlink {
            let _ = header.set_link_name("/etc/passwd");
        }
        header.set_cksum();
        let _ = builder.append(&header, *data);
    }
    builder.into_inner().and_then(GzEncoder::finish).unwrap_or_default()
}

/// Writes `bytes` through a gzip encoder (to make valid gzip of invalid tar in tests).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm_with_files() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let perm = dir.path();
        fs::create_dir_all(perm.join("dhcp4d")).expect("mkdir");
        fs::write(perm.join("dhcp4d/leases.json"), "[]").expect("write");
        fs::write(perm.join("interfaces.json"), r#"{"interfaces":[]}"#).expect("write");
        fs::create_dir_all(perm.join("tls")).expect("mkdir");
        fs::write(perm.join("tls/ca.key"), "secret").expect("write");
        fs::write(perm.join("tls/.lock"), "").expect("write");
        fs::create_dir_all(perm.join("update/bin")).expect("mkdir");
        fs::write(perm.join("update/bin/routerd-x"), "binary").expect("write");
        dir
    }

    #[test]
    fn a_backup_holds_the_configuration_and_state_but_not_scratch_or_binaries() {
        let dir = perm_with_files();
        let archive = create(dir.path()).expect("created");
        assert_eq!(archive.files, 3);
        let entries = read(&archive.bytes, Limits::default()).expect("reads back");
        let paths: Vec<String> = entries.iter().map(|e| e.path.display().to_string()).collect();
        assert_eq!(paths, vec!["dhcp4d/leases.json", "interfaces.json", "tls/ca.key"]);
        assert_eq!(entries[2].data, b"secret");
    }

    #[test]
    fn malicious_and_broken_archives_are_refused_naming_the_problem() {
        use tar::EntryType::{Regular, Symlink};
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (build_raw(&[("../etc/passwd", Regular, b"x")]), "outside --perm"),
            (build_raw(&[("/etc/passwd", Regular, b"x")]), "outside --perm"),
            (build_raw(&[("tls/../../x", Regular, b"x")]), "outside --perm"),
            (build_raw(&[("tls/ca.pem", Symlink, b"")]), "symbolic link"),
            (build_raw(&[("interfaces.json", Regular, b"{not json")]), "not valid JSON"),
            (build_raw(&[("update/bin/routerd", Regular, b"x")]), "does not restore"),
            (build_raw(&[(".lock", Regular, b"")]), "does not restore"),
            (build_raw(&[("a.json", Regular, b"{}"), ("a.json", Regular, b"{}")]), "appears twice"),
            (build_raw(&[]), "no files"),
            (b"not gzip at all".to_vec(), "not a gzip'd tar"),
            (gzip(&[7u8; 2000]), "not a gzip'd tar"),
        ];
        for (bytes, expected) in cases {
            let error = read(&bytes, Limits::default()).expect_err(expected).to_string();
            assert!(error.contains(expected), "expected {expected:?} in {error:?}");
        }
        let big = build_raw(&[("big.bin", tar::EntryType::Regular, &[0u8; 5000])]);
        let limits = Limits { max_file: 4096, ..Limits::default() };
        assert!(read(&big, limits).expect_err("too large").to_string().contains("5000 bytes"));
        let many: Vec<(String, tar::EntryType, &[u8])> =
            (0..5).map(|i| (format!("f{i}"), tar::EntryType::Regular, &b"x"[..])).collect();
        let many: Vec<(&str, tar::EntryType, &[u8])> = many.iter().map(|(p, k, d)| (p.as_str(), *k, *d)).collect();
        let limits = Limits { max_files: 4, ..Limits::default() };
        assert!(read(&build_raw(&many), limits).expect_err("too many").to_string().contains("more than 4 files"));
    }

    #[test]
    fn truncated_archives_are_refused() {
        let dir = perm_with_files();
        let archive = create(dir.path()).expect("created");
        for len in [0, 10, archive.bytes.len() / 2, archive.bytes.len() - 1] {
            assert!(read(&archive.bytes[..len], Limits::default()).is_err(), "{len} bytes");
        }
    }
}
