//! The router's DHCP Unique Identifier: created once as a DUID-LL from the uplink's MAC and stored in
//! `dhcp6/duid`; a DUID already in that file is used as it is (router7's users put their own there, because
//! fiber7 binds the delegated /48 to it).

use std::path::{Path, PathBuf};

use crate::store::{self, Mode};

pub(crate) fn path(perm: &Path) -> PathBuf {
    perm.join("dhcp6").join("duid")
}

/// DUID-LL (type 3) with hardware type 1 (Ethernet).
pub(crate) fn link_layer(mac: [u8; 6]) -> Vec<u8> {
    let mut duid = vec![0, 3, 0, 1];
    duid.extend(mac);
    duid
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum DuidError {
    #[error("{path}: {len} bytes is not a DUID (2 to 130 bytes); fix or remove the file, routerd then creates one")]
    Invalid { path: String, len: usize },
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// The stored DUID, or a new DUID-LL from `mac`, stored for every later start.
pub(crate) fn load_or_create(perm: &Path, mac: [u8; 6]) -> Result<Vec<u8>, DuidError> {
    let path = path(perm);
    match store::read_optional(&path)? {
        Some(duid) if (2..=130).contains(&duid.len()) => Ok(duid),
        Some(duid) => Err(DuidError::Invalid { path: path.display().to_string(), len: duid.len() }),
        None => {
            let duid = link_layer(mac);
            store::write_atomic(&path, &duid, Mode::Public)?;
            tracing::info!("created the DUID {} in {}", routerd_proto::hex(&duid), path.display());
            Ok(duid)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_used_as_is() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = load_or_create(dir.path(), [2, 0, 0, 0, 0, 1]).expect("created");
        assert_eq!(first, vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 1]);
        // Another MAC later (a new NIC) does not change it.
        assert_eq!(load_or_create(dir.path(), [2, 0, 0, 0, 0, 9]).expect("loaded"), first);
        // A user's own DUID (fiber7's customers keep theirs) is used exactly.
        let custom = [0x00, 0x0a, 0x00, 0x03, 0x00, 0x01, 0x4c, 0x5e, 0x0c, 0x43, 0xbf, 0x39];
        std::fs::write(path(dir.path()), custom).expect("write");
        assert_eq!(load_or_create(dir.path(), [2, 0, 0, 0, 0, 1]).expect("loaded"), custom);
        // An empty file is an error that says what to do, and is left alone.
        std::fs::write(path(dir.path()), b"").expect("write");
        let error = load_or_create(dir.path(), [2, 0, 0, 0, 0, 1]).expect_err("empty");
        assert!(error.to_string().contains("remove the file"), "{error}");
        assert_eq!(std::fs::read(path(dir.path())).expect("read"), b"");
    }
}
