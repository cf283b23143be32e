//! Decoding captures with tshark (Debian package tshark), as someone reading `rtrctl capture` in Wireshark would.

use std::{path::Path, process::Command};

use crate::error::LabError;

/// `tshark -r FILE [-Y FILTER] -T fields -e F…`: one line per packet, the fields separated by tabs.
pub fn fields(file: &Path, filter: Option<&str>, fields: &[&str]) -> Result<String, LabError> {
    let mut command = Command::new("tshark");
    command.arg("-r").arg(file);
    if let Some(filter) = filter {
        command.args(["-Y", filter]);
    }
    command.args(["-T", "fields"]);
    for field in fields {
        command.args(["-e", field]);
    }
    let output = command.output().map_err(|e| LabError::unexpected("tshark (Debian package tshark)", e.to_string()))?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
