//! Receiving an uploaded binary: written to a dot file under `update/` while its SHA-256 is computed, checked
//! against the header (size, hash, an executable format), then moved to `update/bin/routerd-<sha256 prefix>`
//! read-only. An upload that is cut off or wrong leaves nothing behind and changes nothing.

use std::{
    fs::{self, File, OpenOptions},
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use routerd_proto::hex;

use super::state::{Artifact, BIN_DIR};

/// Largest binary routerd accepts.
pub const MAX_BINARY: u64 = 512 << 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UploadError {
    #[error("header: {0}")]
    BadHeader(String),
    #[error("received more than the {0} bytes the header announced")]
    TooLong(u64),
    #[error("received {got} bytes, the header announced {expected}; nothing was staged")]
    Truncated { expected: u64, got: u64 },
    #[error("SHA-256 mismatch: the header says {expected}, the data hashes to {got}; nothing was staged")]
    HashMismatch { expected: String, got: String },
    #[error("not an executable for this router (neither ELF nor a #! script); nothing was staged")]
    NotExecutable,
    #[error("{0}")]
    Io(String),
}

/// What the header says about the upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announced {
    pub version: String,
    pub size: u64,
    pub sha256: String,
}

impl Announced {
    pub fn check(&self) -> Result<(), UploadError> {
        if self.size == 0 || self.size > MAX_BINARY {
            return Err(UploadError::BadHeader(format!("size {} is outside 1–{MAX_BINARY} bytes", self.size)));
        }
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(UploadError::BadHeader(format!("sha256 {:?} is not 64 hex digits", self.sha256)));
        }
        if self.version.len() > 128 || self.version.chars().any(char::is_control) {
            return Err(UploadError::BadHeader("version: at most 128 printable characters".into()));
        }
        Ok(())
    }
}

/// An upload in progress.
pub struct Upload {
    announced: Announced,
    perm: PathBuf,
    temp: PathBuf,
    file: Option<File>,
    digest: ring::digest::Context,
    received: u64,
    head: Vec<u8>,
}

fn io(what: &str, path: &Path, error: std::io::Error) -> UploadError {
    UploadError::Io(format!("{what} {}: {error}", path.display()))
}

impl Upload {
    pub fn begin(perm: &Path, announced: Announced) -> Result<Upload, UploadError> {
        announced.check()?;
        let dir = perm.join("update");
        fs::create_dir_all(&dir).map_err(|e| io("creating", &dir, e))?;
        let temp = dir.join(format!(".upload-{}", std::process::id()));
        let _ = fs::remove_file(&temp);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(|e| io("creating", &temp, e))?;
        Ok(Upload {
            announced,
            perm: perm.to_path_buf(),
            temp,
            file: Some(file),
            digest: ring::digest::Context::new(&ring::digest::SHA256),
            received: 0,
            head: Vec::new(),
        })
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    pub fn write(&mut self, chunk: &[u8]) -> Result<(), UploadError> {
        self.received += chunk.len() as u64;
        if self.received > self.announced.size {
            return Err(UploadError::TooLong(self.announced.size));
        }
        if self.head.len() < 4 {
            self.head.extend(chunk.iter().take(4 - self.head.len()));
        }
        self.digest.update(chunk);
        let file = self.file.as_mut().ok_or_else(|| UploadError::Io("the upload was already finished".into()))?;
        file.write_all(chunk).map_err(|e| io("writing", &self.temp, e))
    }

    /// Checks size and hash, and moves the upload to `destination` (a system bundle: its format is checked
    /// by the caller).
    pub fn finish_file(mut self, destination: &Path) -> Result<String, UploadError> {
        if self.received != self.announced.size {
            return Err(UploadError::Truncated { expected: self.announced.size, got: self.received });
        }
        let got = hex(self.digest.clone().finish().as_ref());
        if !got.eq_ignore_ascii_case(&self.announced.sha256) {
            return Err(UploadError::HashMismatch { expected: self.announced.sha256.clone(), got });
        }
        let file = self.file.take().ok_or_else(|| UploadError::Io("the upload was already finished".into()))?;
        file.sync_all().map_err(|e| io("flushing", &self.temp, e))?;
        drop(file);
        fs::rename(&self.temp, destination).map_err(|e| io("staging", destination, e))?;
        Ok(got)
    }

    /// Checks size, hash and format, and stages the binary.
    pub fn finish(mut self) -> Result<Artifact, UploadError> {
        if self.received != self.announced.size {
            return Err(UploadError::Truncated { expected: self.announced.size, got: self.received });
        }
        let got = hex(self.digest.clone().finish().as_ref());
        if !got.eq_ignore_ascii_case(&self.announced.sha256) {
            return Err(UploadError::HashMismatch { expected: self.announced.sha256.clone(), got });
        }
        if !(self.head.starts_with(b"\x7fELF") || self.head.starts_with(b"#!")) {
            return Err(UploadError::NotExecutable);
        }
        let file = self.file.take().ok_or_else(|| UploadError::Io("the upload was already finished".into()))?;
        file.sync_all().map_err(|e| io("flushing", &self.temp, e))?;
        drop(file);
        fs::set_permissions(&self.temp, fs::Permissions::from_mode(0o555)).map_err(|e| io("marking", &self.temp, e))?;
        let bin = self.perm.join(BIN_DIR);
        fs::create_dir_all(&bin).map_err(|e| io("creating", &bin, e))?;
        let path = bin.join(format!("routerd-{}", &got[..12]));
        fs::rename(&self.temp, &path).map_err(|e| io("staging", &path, e))?;
        let version = if self.announced.version.is_empty() {
            format!("sha256.{}", &got[..12])
        } else {
            self.announced.version.clone()
        };
        Ok(Artifact { version, sha256: got, path })
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        // Still there unless finish() moved it: an interrupted or refused upload leaves nothing.
        let _ = fs::remove_file(&self.temp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announced(data: &[u8]) -> Announced {
        let sha256 = routerd_proto::sha256_hex(data);
        Announced { version: "test".into(), size: data.len() as u64, sha256 }
    }

    fn leftovers(perm: &Path) -> Vec<String> {
        fs::read_dir(perm.join("update"))
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_complete_upload_is_staged_read_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = b"#!/bin/sh\nexit 0\n";
        let mut upload = Upload::begin(dir.path(), announced(data)).expect("begins");
        upload.write(&data[..5]).expect("chunk");
        upload.write(&data[5..]).expect("chunk");
        let artifact = upload.finish().expect("staged");
        assert_eq!(fs::read(&artifact.path).expect("read"), data);
        let mode = fs::metadata(&artifact.path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o555);
        assert!(artifact.path.ends_with(format!("update/bin/routerd-{}", &artifact.sha256[..12])));
        assert_eq!(leftovers(dir.path()), vec!["bin"]);
    }

    #[test]
    fn wrong_uploads_stage_nothing_and_leave_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = b"\x7fELF and the rest";
        // Wrong hash.
        let mut wrong = announced(data);
        wrong.sha256 = "0".repeat(64);
        let mut upload = Upload::begin(dir.path(), wrong).expect("begins");
        upload.write(data).expect("chunk");
        assert!(matches!(upload.finish(), Err(UploadError::HashMismatch { .. })));
        // Cut off.
        let mut upload = Upload::begin(dir.path(), announced(data)).expect("begins");
        upload.write(&data[..3]).expect("chunk");
        assert_eq!(upload.finish().err(), Some(UploadError::Truncated { expected: data.len() as u64, got: 3 }));
        // Too long, interrupted (dropped), not executable.
        let mut upload = Upload::begin(dir.path(), announced(data)).expect("begins");
        assert_eq!(upload.write(&[0u8; 100]).err(), Some(UploadError::TooLong(data.len() as u64)));
        drop(upload);
        let text = b"plain text";
        let mut upload = Upload::begin(dir.path(), announced(text)).expect("begins");
        upload.write(text).expect("chunk");
        assert_eq!(upload.finish().err(), Some(UploadError::NotExecutable));
        assert!(leftovers(dir.path()).is_empty(), "{:?}", leftovers(dir.path()));
        // Bad headers.
        for bad in [
            Announced { size: 0, ..announced(data) },
            Announced { size: MAX_BINARY + 1, ..announced(data) },
            Announced { sha256: "xyz".into(), ..announced(data) },
            Announced { version: "a\nb".into(), ..announced(data) },
        ] {
            assert!(matches!(Upload::begin(dir.path(), bad).err(), Some(UploadError::BadHeader(_))));
        }
    }
}
