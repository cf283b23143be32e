//! Safe daemon updates: an uploaded binary is staged ([`staging`]), activated into a trial that the new version
//! confirms once its diagnostics are healthy ([`trial`]), and run by the keeper ([`keeper`]), the small parent
//! process that rolls back to the previous binary when the new one exits at start or is not healthy in time.
//! [`state`] is the one record of all this, `update/state.json` under `--perm`.

pub mod keeper;
pub mod staging;
pub mod state;
pub mod system;
pub mod trial;

/// Exit status with which the daemon asks its keeper to start again (the binary `update/state.json` names).
pub const RESTART_EXIT_CODE: i32 = 75;
/// Set by the keeper for its child: the keeper's PID.
pub const KEEPER_ENV: &str = "ROUTERD_KEEPER";
/// Set by the keeper when it runs an uploaded binary: its SHA-256, checked before it was started.
pub const ARTIFACT_ENV: &str = "ROUTERD_ARTIFACT_SHA256";
/// Set by the keeper when the child is a new version on trial.
pub const TRIAL_ENV: &str = "ROUTERD_TRIAL";

/// Whether this daemon runs under a keeper (and so can be restarted, updated and rolled back).
pub fn has_keeper() -> bool {
    std::env::var_os(KEEPER_ENV).is_some()
}

/// The running version: routerd's own, plus the SHA-256 prefix of the binary when the keeper started an
/// uploaded one (two builds of one version differ there).
pub fn running_version() -> String {
    match std::env::var(ARTIFACT_ENV) {
        Ok(sha256) if sha256.len() >= 12 => format!("{}+sha256.{}", crate::VERSION, &sha256[..12]),
        _ => crate::VERSION.to_string(),
    }
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let len = file.read(&mut buffer)?;
        if len == 0 {
            break;
        }
        context.update(&buffer[..len]);
    }
    Ok(routerd_proto::hex(context.finish().as_ref()))
}
