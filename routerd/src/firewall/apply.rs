//! Loading the ruleset into the kernel as one transaction, through libnftables (no `nft` binary at runtime).

use super::ruleset::{Counters, Ruleset};
use crate::sys::nftables::Nft;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ApplyError {
    #[error("libnftables could not be initialised (is Debian's libnftables1 installed?)")]
    NoLibrary,
    #[error("nftables refused the ruleset, nothing changed: {0}")]
    Refused(String),
}

/// Whether this kernel has nftables flowtables (`CONFIG_NF_FLOW_TABLE`): a scratch table with a flowtable on
/// `device` is created and removed in one transaction, which changes nothing when it fails.
pub(crate) fn flowtables_supported(device: &str) -> bool {
    let probe = format!(
        "table inet routerd_probe {{ flowtable probe {{ hook ingress priority 0; devices = {{ \"{device}\" }}; }} }}\n\
         delete table inet routerd_probe\n"
    );
    Nft::new(false).is_some_and(|mut nft| nft.run(&probe).is_ok())
}

/// The counters of routerd's rules now, by rule comment (empty when routerd's tables are not loaded).
pub(crate) fn current_counters() -> Counters {
    let mut counters = Counters::new();
    let Some(mut nft) = Nft::new(true) else { return counters };
    for table in ["inet routerd", "ip routerd_nat"] {
        let Ok(output) = nft.run(&format!("list table {table}")) else { continue };
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&output) else { continue };
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

/// Proof that one of routerd's rulesets (the lockdown or the full one) is in the kernel: the only way to turn
/// forwarding on ([`super::forwarding::enable_forwarding`]), so a router never forwards without its firewall.
#[derive(Debug)]
pub(crate) struct Loaded(());

/// Replaces routerd's tables with `ruleset` atomically, keeping the counters of rules that stay the same;
/// other tables are left alone.
pub(crate) fn apply(ruleset: &Ruleset) -> Result<Loaded, ApplyError> {
    let text = ruleset.to_nft_with_counters(&current_counters());
    let mut nft = Nft::new(false).ok_or(ApplyError::NoLibrary)?;
    nft.run(&text).map(|_| Loaded(())).map_err(ApplyError::Refused)
}
