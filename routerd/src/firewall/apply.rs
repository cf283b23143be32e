//! Loading the ruleset into the kernel as one transaction. For now through `nft -f -` (nftables' own parser,
//! atomic like a netlink batch); issue 6 replaces this with nftnl batches so routerd needs no nft binary.

use std::{
    io::Write,
    process::{Command, Stdio},
};

use super::ruleset::{Counters, Ruleset};

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

/// The counters of routerd's rules now, by rule comment (empty when routerd's tables are not loaded).
pub fn current_counters() -> Counters {
    let mut counters = Counters::new();
    for table in [["inet", "routerd"], ["ip", "routerd_nat"]] {
        let Ok(output) =
            Command::new("nft").args(["-j", "list", "table", table[0], table[1]]).stderr(Stdio::null()).output()
        else {
            continue;
        };
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(&output.stdout) else { continue };
        for item in json["nftables"].as_array().into_iter().flatten() {
            let rule = &item["rule"];
            let Some(comment) = rule["comment"].as_str() else { continue };
            let counter = rule["expr"].as_array().into_iter().flatten().find_map(|e| e.get("counter"));
            if let Some(counter) = counter {
                let value = |key: &str| counter[key].as_u64().unwrap_or(0);
                counters.insert(comment.to_string(), (value("packets"), value("bytes")));
            }
        }
    }
    counters
}

/// Replaces routerd's tables with `ruleset` atomically, keeping the counters of rules that stay the same;
/// other tables are left alone.
pub fn apply(ruleset: &Ruleset) -> Result<(), ApplyError> {
    let text = ruleset.to_nft_with_counters(&current_counters());
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(ApplyError::Spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(text.as_bytes()).map_err(ApplyError::Spawn)?;
    }
    let output = child.wait_with_output().map_err(ApplyError::Spawn)?;
    if output.status.success() {
        Ok(())
    } else {
        Err(ApplyError::Refused(String::from_utf8_lossy(&output.stderr).trim().to_string()))
    }
}
