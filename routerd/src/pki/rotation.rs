//! Replacing the router's CA, after a backup or a paired laptop leaked: a new CA key and certificate, and with
//! them every client identity, revocation and pairing code gone (the old CA's certificates no longer verify),
//! the old CA key deleted, and one new pairing code so the owner can pair again. The server certificate is
//! issued anew for the new CA when routerd starts (it notices the new CA and starts again by itself).
//!
//! Crash-safe: the new `tls/` is built whole in a hidden directory and swapped with the old one in one
//! `renameat2(RENAME_EXCHANGE)`; a crash before the swap leaves the old CA, after it the new one.

use std::{
    fs,
    path::{Path, PathBuf},
};

use routerd_proto::pairing_code::PairingCode;
use time::OffsetDateTime;

use super::{Authority, PkiError, PkiPaths};
use crate::sys::files::exchange;

/// Where the new `tls/` is built (a dot directory: never backed up, removed at the next rotation).
const BUILDING: &str = ".tls-rotating";

/// What a rotation leaves: the new CA and a one-time pairing code for it.
pub struct Rotated {
    pub authority: Authority,
    pub pairing_code: PairingCode,
    pub pairing_code_expires: OffsetDateTime,
}

impl std::fmt::Debug for Rotated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rotated").field("pairing_code_expires", &self.pairing_code_expires).finish_non_exhaustive()
    }
}

/// Replaces the CA under `perm/tls` (see the module's documentation).
pub fn rotate_ca(perm: &Path, router_name: &str, now: OffsetDateTime) -> Result<Rotated, PkiError> {
    let live = PkiPaths::new(perm);
    let building = perm.join(BUILDING);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e: std::io::Error| PkiError::Corrupt { path, message: e.to_string() }
    };
    if building.exists() {
        fs::remove_dir_all(&building).map_err(io(&building))?;
    }
    let new = Authority::load_or_create(PkiPaths { dir: building.clone() }, router_name)?;
    let (code, expires) = new.create_pairing_code(now)?;
    drop(new);
    // The lock file moves along with its directory; holding the old one keeps other PKI changes out meanwhile.
    let _lock = crate::store::lock_dir(&live.dir)?;
    exchange(&building, &live.dir).map_err(io(&live.dir))?;
    sync_dir(perm);
    // `building` now holds the old CA: its key must not outlive the rotation.
    fs::remove_dir_all(&building).map_err(io(&building))?;
    sync_dir(perm);
    tracing::warn!("replaced the router's CA: every client identity is invalid; pair again with the new code");
    let authority = Authority::load_or_create(live, router_name)?;
    Ok(Rotated { authority, pairing_code: code, pairing_code_expires: expires })
}

fn sync_dir(dir: &Path) {
    if let Ok(handle) = fs::File::open(dir) {
        let _ = handle.sync_all();
    }
}

/// Removes what an interrupted rotation left (before its swap: the old CA stays).
pub fn remove_interrupted_rotation(perm: &Path) -> Option<PathBuf> {
    let building = perm.join(BUILDING);
    (building.exists() && fs::remove_dir_all(&building).is_ok()).then_some(building)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::pki::Validity;

    #[test]
    fn a_rotation_replaces_the_ca_and_forgets_every_identity_and_code() {
        let dir = tempfile::tempdir().expect("tempdir");
        let perm = dir.path();
        let old = Authority::load_or_create(PkiPaths::new(perm), "router").expect("CA");
        old.issue_client("laptop", Validity::default()).expect("identity");
        old.revoke("laptop").expect("revoked");
        old.issue_client("phone", Validity::default()).expect("identity");
        let (old_code, _) = old.create_pairing_code(OffsetDateTime::now_utc()).expect("code");
        old.server_credentials(&BTreeSet::from(["localhost".to_string()])).expect("server certificate");
        let old_key = fs::read(PkiPaths::new(perm).ca_key()).expect("key");

        let rotated = rotate_ca(perm, "router", OffsetDateTime::now_utc()).expect("rotated");
        let new = Authority::load_or_create(PkiPaths::new(perm), "router").expect("CA");
        assert_ne!(new.ca_fingerprint(), old.ca_fingerprint());
        assert_eq!(rotated.authority.ca_fingerprint(), new.ca_fingerprint());
        assert_ne!(fs::read(PkiPaths::new(perm).ca_key()).expect("key"), old_key);
        assert!(new.clients().expect("clients").is_empty(), "no identity of the old CA is listed");
        assert!(new.revoked_serials().expect("revoked").is_empty());
        assert!(!PkiPaths::new(perm).server_cert().exists(), "the server certificate is issued anew at start");
        assert!(new.check_pairing_code(&old_code, OffsetDateTime::now_utc()).is_err(), "old codes are gone");
        new.check_pairing_code(&rotated.pairing_code, OffsetDateTime::now_utc()).expect("the new code works");
        assert!(!perm.join(BUILDING).exists(), "the old CA key is deleted");
        let names: Vec<String> =
            fs::read_dir(perm).expect("perm").flatten().map(|e| e.file_name().to_string_lossy().into()).collect();
        assert_eq!(names, ["tls"], "nothing else is left in --perm");
    }

    #[test]
    fn an_interrupted_rotation_leaves_the_old_ca() {
        let dir = tempfile::tempdir().expect("tempdir");
        let perm = dir.path();
        let old = Authority::load_or_create(PkiPaths::new(perm), "router").expect("CA");
        // A crash while the new CA was being built.
        Authority::load_or_create(PkiPaths { dir: perm.join(BUILDING) }, "router").expect("half a rotation");
        assert_eq!(remove_interrupted_rotation(perm), Some(perm.join(BUILDING)));
        let again = Authority::load_or_create(PkiPaths::new(perm), "router").expect("CA");
        assert_eq!(again.ca_fingerprint(), old.ca_fingerprint());
    }
}
