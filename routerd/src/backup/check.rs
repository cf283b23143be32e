//! A staged restore loaded the way routerd loads `--perm` at start, before anything is replaced: whatever
//! routerd would refuse or silently replace (a broken configuration file, a damaged CA, a revocation list of the
//! wrong shape, unreadable leases) refuses the restore, naming the file and the reason.

use std::path::Path;

use super::BackupError;
use crate::{
    config::Config,
    pki::{Authority, PkiPaths},
};

fn refused(path: impl Into<String>, reason: impl std::fmt::Display) -> BackupError {
    BackupError::WouldNotStart { path: path.into(), reason: reason.to_string() }
}

/// Checks the tree under `root` (a staging directory laid out like `--perm`).
pub fn check_tree(root: &Path) -> Result<(), BackupError> {
    let config = Config::load(root);
    if let Some(problem) = config.problems.first() {
        return Err(refused(&problem.file, &problem.message));
    }
    check_pki(root)?;
    check_leases(root)
}

fn check_pki(root: &Path) -> Result<(), BackupError> {
    let paths = PkiPaths::new(root);
    for file in [paths.ca_cert(), paths.ca_key()] {
        if !file.exists() {
            let shown = file.strip_prefix(root).unwrap_or(&file).display().to_string();
            return Err(refused(shown, "missing: the router would make a new CA and lock every paired device out"));
        }
    }
    let shown = |e: &crate::pki::PkiError| e.to_string().replace(&format!("{}/", root.display()), "");
    let authority =
        Authority::load_or_create(paths.clone(), "restore-check").map_err(|e| refused("tls/", shown(&e)))?;
    authority.revoked_serials().map_err(|e| refused("tls/revoked.json", shown(&e)))?;
    authority.current_crl().map_err(|e| refused("tls/revoked.json", shown(&e)))?;
    authority.clients().map_err(|e| refused("tls/clients/", shown(&e)))?;
    // The server certificate is issued anew when it does not match, but a key that does not parse is an error.
    if let Some(key) = crate::store::read_optional(&paths.server_key()).map_err(|e| refused("tls/server.key", e))? {
        let text = String::from_utf8(key).map_err(|_| refused("tls/server.key", "not a text file"))?;
        rcgen::KeyPair::from_pem(&text).map_err(|e| refused("tls/server.key", format!("not a private key: {e}")))?;
    }
    Ok(())
}

fn check_leases(root: &Path) -> Result<(), BackupError> {
    let leases = crate::lan::dhcp4d::persist::leases_path(root);
    if let Some(records) = crate::store::read_json_optional::<Vec<crate::lan::dhcp4d::LeaseRecord>>(&leases)
        .map_err(|e| refused("dhcp4d/leases.json", e))?
    {
        for record in &records {
            record.to_lease("lan0").map_err(|reason| refused("dhcp4d/leases.json", reason))?;
        }
    }
    crate::uplink::dhcp4::store::load(root).map_err(|reason| refused("dhcp4/wire/", reason))?;
    crate::uplink::dhcp6::store::load(root).map_err(|reason| refused("dhcp6/wire/lease.json", reason))?;
    if let Some(duid) =
        crate::store::read_optional(&crate::uplink::dhcp6::duid::path(root)).map_err(|e| refused("dhcp6/duid", e))?
        && !(2..=130).contains(&duid.len())
    {
        return Err(refused("dhcp6/duid", format!("{} bytes; a DUID has 2 to 130", duid.len())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    /// A tree as a real router has it: a CA, a lease, configuration.
    fn healthy() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        Authority::load_or_create(PkiPaths::new(root), "router").expect("CA");
        fs::create_dir_all(root.join("dhcp4d")).expect("mkdir");
        fs::write(
            root.join("dhcp4d/leases.json"),
            r#"[{"addr":"192.0.2.100","hardware_addr":"02:00:00:00:02:01","expiry":"2026-01-01T00:00:00Z"}]"#,
        )
        .expect("write");
        fs::write(root.join("interfaces.json"), r#"{"interfaces":[]}"#).expect("write");
        dir
    }

    #[test]
    fn a_healthy_tree_passes() {
        check_tree(healthy().path()).expect("passes");
    }

    #[test]
    fn what_routerd_would_refuse_is_named() {
        let cases: [(&str, &[u8], &str); 8] = [
            ("tls/revoked.json", br#"[1, 2]"#, "tls/revoked.json"),
            (
                "tls/revoked.json",
                br#"{"revoked":[{"name":"x","serial":"zz","revoked_at":"2026-01-01T00:00:00Z"}]}"#,
                "tls/revoked.json",
            ),
            ("tls/ca.pem", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "tls/"),
            ("tls/server.key", b"not a key", "tls/server.key"),
            ("routerd.json", br#"{"hostname": 5}"#, "routerd.json"),
            ("dhcp4d/leases.json", br#"[{"addr":"not an address","hardware_addr":"x"}]"#, "dhcp4d/leases.json"),
            ("dhcp6/duid", b"", "dhcp6/duid"),
            ("dhcp4d/leases.json", br#"{"a":1}"#, "dhcp4d/leases.json"),
        ];
        for (file, content, named) in cases {
            let dir = healthy();
            let path = dir.path().join(file);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(&path, content).expect("write");
            let error = check_tree(dir.path()).expect_err(file).to_string();
            assert!(error.starts_with(named) && error.contains("would not start"), "{file}: {error}");
        }
        let dir = healthy();
        fs::remove_file(dir.path().join("tls/ca.key")).expect("rm");
        let error = check_tree(dir.path()).expect_err("no key").to_string();
        assert!(error.contains("tls/ca.key") && error.contains("new CA"), "{error}");
    }
}
