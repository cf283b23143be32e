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
    #[error("a tar extension header (long name or PAX) of {size} bytes, more than the {limit} allowed")]
    ExtensionTooLarge { size: u64, limit: u64 },
    #[error("{path} and {other}: one is a file, the other a directory inside it")]
    Clash { path: String, other: String },
    #[error("{path}: routerd would not start with this: {reason}")]
    WouldNotStart { path: String, reason: String },
    #[error(
        "the last restore is still on trial; wait until `rtrctl backup status` says it is confirmed or rolled back"
    )]
    TrialRunning,
    #[error("no restore is on trial")]
    NoTrial,
}

/// The largest tar extension header (a GNU long name or link, a PAX header) an archive may carry.
pub const MAX_EXTENSION_HEADER: u64 = 64 * 1024;

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

/// A reader that fails once more than `left` bytes came through: whatever the headers claim, decompressing
/// an archive never yields more than the limits allow (a small gzip can unpack to gigabytes).
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            // One byte more than allowed tells a stream that ends here from one that goes on.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(std::io::Error::other("the archive unpacks to more than the limits allow")),
            };
        }
        let want = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let got = self.inner.read(&mut buf[..want])?;
        self.left -= got as u64;
        Ok(got)
    }
}

fn unpacked(bytes: &[u8], limits: Limits) -> Capped<GzDecoder<&[u8]>> {
    // Every file may add a header and padding (and extension headers) to its data.
    let overhead = (limits.max_files as u64 + 16) * (2 * 512 + 2 * MAX_EXTENSION_HEADER.min(4096));
    Capped { inner: GzDecoder::new(bytes), left: limits.max_total + overhead + (1 << 20) }
}

/// Walks the tar headers before the tar crate reads the archive: the crate keeps long names and PAX records in
/// memory whole, so their size is checked here first.
fn check_headers(bytes: &[u8], limits: Limits) -> Result<(), BackupError> {
    let corrupt = |e: std::io::Error| BackupError::Corrupt(e.to_string());
    let mut stream = unpacked(bytes, limits);
    let mut block = [0u8; 512];
    loop {
        match stream.read_exact(&mut block) {
            Ok(()) => {}
            // The end-of-archive blocks may be cut short by some writers; the second pass checks the rest.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(corrupt(e)),
        }
        if block.iter().all(|b| *b == 0) {
            return Ok(());
        }
        let header = tar::Header::from_byte_slice(&block);
        let size = header.size().map_err(corrupt)?;
        let kind = header.entry_type();
        let extension = kind.is_gnu_longname()
            || kind.is_gnu_longlink()
            || kind.is_pax_global_extensions()
            || kind.is_pax_local_extensions();
        if extension && size > MAX_EXTENSION_HEADER {
            return Err(BackupError::ExtensionTooLarge { size, limit: MAX_EXTENSION_HEADER });
        }
        // A size near u64::MAX must not wrap around into a small skip.
        let Some(padded) = size.div_ceil(512).checked_mul(512) else {
            return Err(BackupError::TooLarge { limit: limits.max_total });
        };
        let skipped = std::io::copy(&mut (&mut stream).take(padded), &mut std::io::sink()).map_err(corrupt)?;
        if skipped < padded {
            return Ok(());
        }
    }
}

/// Unpacks `bytes` in memory and checks every entry; nothing touches the disk.
pub fn read(bytes: &[u8], limits: Limits) -> Result<Vec<Entry>, BackupError> {
    check_headers(bytes, limits)?;
    let mut archive = tar::Archive::new(unpacked(bytes, limits));
    let mut entries: Vec<Entry> = Vec::new();
    let mut total = 0u64;
    let corrupt = |e: std::io::Error| BackupError::Corrupt(e.to_string());
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let kind = entry.header().entry_type();
        // Directories are never created from an archive (files bring theirs), so `./` from `tar -C dir .` is fine.
        if kind.is_dir() {
            continue;
        }
        let raw_path = entry.path_bytes().into_owned();
        let path = safe_path(&raw_path)?;
        let shown = path.display().to_string();
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
        let size = entry.size();
        if size > limits.max_file {
            return Err(BackupError::FileTooLarge { path: shown, size, limit: limits.max_file });
        }
        if entries.len() >= limits.max_files {
            return Err(BackupError::TooManyFiles { limit: limits.max_files });
        }
        if entries.iter().any(|e| e.path == path) {
            return Err(BackupError::Duplicate { path: shown });
        }
        if let Some(other) = entries.iter().find(|e| e.path.starts_with(&path) || path.starts_with(&e.path)) {
            return Err(BackupError::Clash { path: shown, other: other.path.display().to_string() });
        }
        // What is actually read counts, not what the header claims.
        let mut data = Vec::new();
        entry.by_ref().take(limits.max_file + 1).read_to_end(&mut data).map_err(corrupt)?;
        let read = data.len() as u64;
        if read > limits.max_file {
            return Err(BackupError::FileTooLarge { path: shown, size: read, limit: limits.max_file });
        }
        total += read;
        if total > limits.max_total {
            return Err(BackupError::TooLarge { limit: limits.max_total });
        }
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

    /// A tar header of `kind` claiming `size` bytes, followed by that many bytes, gzip'd as it streams.
    fn claimed(kind: tar::EntryType, size: u64) -> Vec<u8> {
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..4].copy_from_slice(b"name");
        header.set_size(size);
        header.set_mode(0o644);
        header.set_entry_type(kind);
        header.set_cksum();
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(header.as_bytes()).expect("header");
        let chunk = vec![b'a'; 1 << 16];
        let mut left = size.div_ceil(512) * 512;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            encoder.write_all(&chunk[..n]).expect("data");
            left -= n as u64;
        }
        encoder.write_all(&[0u8; 1024]).expect("end");
        encoder.finish().expect("gzip")
    }

    #[test]
    fn huge_extension_headers_and_gzip_bombs_are_refused_before_they_are_held() {
        for kind in [tar::EntryType::GNULongName, tar::EntryType::XHeader, tar::EntryType::XGlobalHeader] {
            let bomb = claimed(kind, 32 << 20);
            assert!(bomb.len() < 256 << 10, "a small archive: {} bytes", bomb.len());
            let error = read(&bomb, Limits::default()).expect_err("refused").to_string();
            assert!(error.contains("extension header"), "{kind:?}: {error}");
        }
        // A file within the per-file limit, in an archive whose unpacked size is over the total: the bytes read
        // are counted, and reading stops at the cap.
        let limits = Limits { max_file: 8 << 20, max_total: 4 << 20, max_files: 10 };
        let error = read(&claimed(tar::EntryType::Regular, 6 << 20), limits).expect_err("refused").to_string();
        assert!(error.contains("more than"), "{error}");
    }

    #[test]
    fn a_file_and_a_directory_of_the_same_name_are_refused() {
        use tar::EntryType::Regular;
        let clash = build_raw(&[("dhcp4d", Regular, b"x"), ("dhcp4d/leases.json", Regular, b"[]")]);
        let error = read(&clash, Limits::default()).expect_err("refused").to_string();
        assert!(error.contains("dhcp4d/leases.json and dhcp4d"), "{error}");
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
