//! Loading the ruleset into the kernel as one transaction. For now through `nft -f -` (nftables' own parser,
//! atomic like a netlink batch); issue 6 replaces this with nftnl batches so routerd needs no nft binary.

use std::{
    io::Write,
    process::{Command, Stdio},
};

use super::ruleset::Ruleset;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("running nft: {0} (install Debian's nftables)")]
    Spawn(std::io::Error),
    #[error("nftables refused the ruleset, nothing changed: {0}")]
    Refused(String),
}

/// Whether this kernel has nftables flowtables (`CONFIG_NF_FLOW_TABLE`): a scratch table with a flowtable on
/// `device` is created and removed again (in one transaction that is never committed when it fails).
pub fn flowtables_supported(device: &str) -> bool {
    let probe = format!(
        "table inet routerd_probe {{ flowtable probe {{ hook ingress priority 0; devices = {{ \"{device}\" }}; }} }}\n\
         delete table inet routerd_probe\n"
    );
    let Ok(mut child) =
        Command::new("nft").args(["-f", "-"]).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null()).spawn()
    else {
        return false;
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(probe.as_bytes());
    }
    child.wait().is_ok_and(|status| status.success())
}

/// Replaces routerd's tables with `ruleset` atomically; other tables are left alone.
pub fn apply(ruleset: &Ruleset) -> Result<(), ApplyError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(ApplyError::Spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(ruleset.to_nft().as_bytes()).map_err(ApplyError::Spawn)?;
    }
    let output = child.wait_with_output().map_err(ApplyError::Spawn)?;
    if output.status.success() {
        Ok(())
    } else {
        Err(ApplyError::Refused(String::from_utf8_lossy(&output.stderr).trim().to_string()))
    }
}
