//! The system update bundle (`.rbundle`): an uncompressed tar of `manifest.json`, optionally `manifest.sig`
//! (ed25519 over the manifest's bytes), and the parts the manifest names with their size and SHA-256: `vmlinuz`,
//! `initrd`, `root.squashfs`. A bundle is checked whole (format, sizes, hashes, signature) before anything of it
//! is written anywhere.

use std::{
    collections::BTreeMap,
    io::Read,
    path::{Path, PathBuf},
};

use ring::signature::{ED25519, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

pub const MANIFEST: &str = "manifest.json";
pub const SIGNATURE: &str = "manifest.sig";
pub const PARTS: [&str; 3] = ["vmlinuz", "initrd", "root.squashfs"];
pub const FORMAT: u32 = 1;
/// The largest bundle routerd takes (a root slot is 256 or 512 MiB).
pub const MAX_BUNDLE: u64 = 640 << 20;
const MAX_MANIFEST: u64 = 64 << 10;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub size: u64,
    /// Hex.
    pub sha256: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// What `rtrctl update status` calls the system once it runs.
    pub version: String,
    pub kernel_release: String,
    pub parts: BTreeMap<String, Part>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("not a routerd system bundle: {0}")]
    Format(String),
    #[error("{part}: {reason}")]
    Part { part: String, reason: String },
    #[error("the bundle is not signed, and routerd.json's update_signing_keys require a signature")]
    Unsigned,
    #[error("the signature does not verify with any key in routerd.json's update_signing_keys")]
    BadSignature,
    #[error("{0}")]
    Io(String),
}

impl BundleError {
    fn part(part: &str, reason: impl Into<String>) -> BundleError {
        BundleError::Part { part: part.to_string(), reason: reason.into() }
    }
}

/// A checked bundle: its manifest, whether it was signed, and where each part starts in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    pub manifest: Manifest,
    pub signed: bool,
    pub path: PathBuf,
    /// Byte offset of each part's data in the bundle file.
    pub offsets: BTreeMap<String, u64>,
}

/// Checks the bundle at `path` whole. With `keys`, a signature by one of them is required.
pub fn check(path: &Path, keys: &[[u8; 32]]) -> Result<Checked, BundleError> {
    let io = |e: std::io::Error| BundleError::Io(format!("reading the bundle: {e}"));
    let file = std::fs::File::open(path).map_err(io)?;
    let length = file.metadata().map_err(io)?.len();
    if length > MAX_BUNDLE {
        return Err(BundleError::Format(format!("{length} bytes, more than the {MAX_BUNDLE} a bundle may have")));
    }
    let mut archive = tar::Archive::new(file);
    let mut manifest_bytes = None;
    let mut signature = None;
    let mut hashes: BTreeMap<String, (u64, String, u64)> = BTreeMap::new();
    let entries = archive.entries().map_err(|e| BundleError::Format(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| BundleError::Format(e.to_string()))?;
        let name = entry.path().map_err(|e| BundleError::Format(e.to_string()))?.to_string_lossy().to_string();
        let offset = entry.raw_file_position();
        let size = entry.header().size().map_err(|e| BundleError::Format(e.to_string()))?;
        match name.as_str() {
            MANIFEST | SIGNATURE => {
                if size > MAX_MANIFEST {
                    return Err(BundleError::Format(format!("{name} is {size} bytes")));
                }
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).map_err(|e| BundleError::Format(format!("{name}: {e}")))?;
                if name == MANIFEST { manifest_bytes = Some(bytes) } else { signature = Some(bytes) }
            }
            part if PARTS.contains(&part) => {
                if hashes.contains_key(part) {
                    return Err(BundleError::part(part, "appears twice"));
                }
                let (read, sha256) = hash(&mut entry).map_err(|e| BundleError::part(part, e.to_string()))?;
                hashes.insert(part.to_string(), (read, sha256, offset));
            }
            other => return Err(BundleError::Format(format!("unexpected entry {other:?}"))),
        }
    }
    let manifest_bytes = manifest_bytes.ok_or_else(|| BundleError::Format(format!("no {MANIFEST}")))?;
    let manifest: Manifest =
        serde_json::from_slice(&manifest_bytes).map_err(|e| BundleError::Format(format!("{MANIFEST}: {e}")))?;
    if manifest.format != FORMAT {
        return Err(BundleError::Format(format!("format {} (this routerd reads format {FORMAT})", manifest.format)));
    }
    if manifest.version.is_empty() || manifest.version.len() > 128 || manifest.version.chars().any(char::is_control) {
        return Err(BundleError::Format("version: 1 to 128 printable characters".into()));
    }
    let mut offsets = BTreeMap::new();
    for part in PARTS {
        let announced = manifest.parts.get(part).ok_or_else(|| BundleError::part(part, "not in the manifest"))?;
        let (size, sha256, offset) = hashes.get(part).ok_or_else(|| BundleError::part(part, "missing"))?;
        if *size != announced.size {
            return Err(BundleError::part(part, format!("{size} bytes, the manifest says {}", announced.size)));
        }
        if !sha256.eq_ignore_ascii_case(&announced.sha256) {
            return Err(BundleError::part(part, format!("SHA-256 {sha256}, the manifest says {}", announced.sha256)));
        }
        offsets.insert(part.to_string(), *offset);
    }
    let signed = verify_signature(&manifest_bytes, signature.as_deref(), keys)?;
    Ok(Checked { manifest, signed, path: path.to_path_buf(), offsets })
}

/// A part's length and SHA-256, read through once.
fn hash(reader: &mut impl Read) -> std::io::Result<(u64, String)> {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buffer = vec![0u8; 1 << 20];
    let mut read = 0u64;
    loop {
        let n = reader.read(&mut buffer)?;
        if n == 0 {
            return Ok((read, routerd_proto::hex(context.finish().as_ref())));
        }
        context.update(&buffer[..n]);
        read += n as u64;
    }
}

/// Whether the manifest is signed by one of `keys`: with keys configured an unsigned or wrongly signed bundle is
/// refused; without, a signature is reported but cannot be checked.
fn verify_signature(manifest: &[u8], signature: Option<&[u8]>, keys: &[[u8; 32]]) -> Result<bool, BundleError> {
    match (signature, keys.is_empty()) {
        (signature, true) => Ok(signature.is_some()),
        (None, false) => Err(BundleError::Unsigned),
        (Some(signature), false) => {
            let verified =
                keys.iter().any(|key| UnparsedPublicKey::new(&ED25519, key).verify(manifest, signature).is_ok());
            if verified { Ok(true) } else { Err(BundleError::BadSignature) }
        }
    }
}

#[cfg(test)]
pub mod tests {
    use ring::signature::{Ed25519KeyPair, KeyPair};

    use super::*;

    /// A bundle of `parts` (name, bytes), with a manifest that says `announced` for each (or the truth).
    pub fn write_bundle(path: &Path, parts: &[(&str, &[u8])], lie: Option<(&str, Part)>, key: Option<&Ed25519KeyPair>) {
        let mut manifest = Manifest {
            format: FORMAT,
            version: "test-2".into(),
            kernel_release: "6.1.0-57-amd64".into(),
            parts: BTreeMap::new(),
        };
        for (name, bytes) in parts {
            let sha256 = routerd_proto::hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
            manifest.parts.insert(name.to_string(), Part { size: bytes.len() as u64, sha256 });
        }
        if let Some((name, part)) = lie {
            manifest.parts.insert(name.to_string(), part);
        }
        let manifest = serde_json::to_vec_pretty(&manifest).expect("JSON");
        let mut builder = tar::Builder::new(std::fs::File::create(path).expect("create"));
        let mut add = |name: &str, bytes: &[u8]| {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, bytes).expect("append");
        };
        add(MANIFEST, &manifest);
        if let Some(key) = key {
            add(SIGNATURE, key.sign(&manifest).as_ref());
        }
        for (name, bytes) in parts {
            add(name, bytes);
        }
        builder.finish().expect("finish");
    }

    pub fn key_pair(seed: u8) -> Ed25519KeyPair {
        Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).expect("key")
    }

    const GOOD: [(&str, &[u8]); 3] = [("vmlinuz", b"kernel"), ("initrd", b"initramfs"), ("root.squashfs", b"root")];

    #[test]
    fn a_whole_bundle_checks_and_says_where_its_parts_are() {
        let dir = tempfile::tempdir().expect("temp");
        let path = dir.path().join("b.rbundle");
        write_bundle(&path, &GOOD, None, None);
        let checked = check(&path, &[]).expect("a good bundle");
        assert_eq!(checked.manifest.version, "test-2");
        assert!(!checked.signed);
        let bytes = std::fs::read(&path).expect("read");
        let at = checked.offsets["root.squashfs"] as usize;
        assert_eq!(&bytes[at..at + 4], b"root");
    }

    #[test]
    fn a_wrong_hash_a_missing_part_and_stray_entries_are_refused() {
        let dir = tempfile::tempdir().expect("temp");
        let path = dir.path().join("b.rbundle");
        let lie = Part { size: 4, sha256: "00".repeat(32) };
        write_bundle(&path, &GOOD, Some(("root.squashfs", lie)), None);
        assert!(matches!(check(&path, &[]), Err(BundleError::Part { part, .. }) if part == "root.squashfs"));
        write_bundle(&path, &GOOD[..2], None, None);
        assert!(matches!(check(&path, &[]), Err(BundleError::Part { part, .. }) if part == "root.squashfs"));
        write_bundle(&path, &[GOOD[0], GOOD[1], GOOD[2], ("evil", b"x")], None, None);
        assert!(matches!(check(&path, &[]), Err(BundleError::Format(_))));
        std::fs::write(&path, b"not a tar at all, just some text that is long enough to be a header maybe").expect("w");
        assert!(check(&path, &[]).is_err());
        // Truncated: the last part cut short.
        write_bundle(&path, &GOOD, None, None);
        let bytes = std::fs::read(&path).expect("read");
        let at = check(&path, &[]).expect("good").offsets["root.squashfs"] as usize;
        std::fs::write(&path, &bytes[..at + 2]).expect("truncate");
        assert!(check(&path, &[]).is_err());
    }

    #[test]
    fn with_keys_configured_only_a_bundle_signed_by_one_of_them_passes() {
        let dir = tempfile::tempdir().expect("temp");
        let path = dir.path().join("b.rbundle");
        let (ours, theirs) = (key_pair(1), key_pair(2));
        let our_key: [u8; 32] = ours.public_key().as_ref().try_into().expect("32 bytes");
        write_bundle(&path, &GOOD, None, Some(&ours));
        assert!(check(&path, &[our_key]).expect("signed by us").signed);
        write_bundle(&path, &GOOD, None, Some(&theirs));
        assert_eq!(check(&path, &[our_key]), Err(BundleError::BadSignature));
        write_bundle(&path, &GOOD, None, None);
        assert_eq!(check(&path, &[our_key]), Err(BundleError::Unsigned));
        let hex = routerd_proto::hex(&our_key);
        assert_eq!(crate::config::parse_public_key(&hex), Some(our_key));
        assert_eq!(crate::config::parse_public_key("abc"), None);
    }
}
