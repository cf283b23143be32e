//! Running a short-lived command to completion, with its output in the error when it fails.

use std::process::{Command, Stdio};

use crate::error::{IoContext, LabError};

/// The command line as a user would type it, for messages.
pub fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `command` and returns its standard output; a non-zero exit is an error carrying stderr and stdout.
pub fn run(command: &mut Command) -> Result<String, LabError> {
    let output = run_unchecked(command)?;
    if output.success {
        Ok(output.stdout)
    } else {
        Err(LabError::CommandFailed {
            command: describe(command),
            status: output.status,
            output: format!("{}{}", output.stderr, output.stdout),
        })
    }
}

/// The result of a command that may legitimately fail (e.g. a refused connection the test expects).
#[derive(Clone, Debug)]
pub struct Output {
    pub success: bool,
    pub status: String,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// stdout and stderr together, for assertion messages.
    pub fn combined(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

pub fn run_unchecked(command: &mut Command) -> Result<Output, LabError> {
    let output = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .context(|| format!("starting `{}`", describe(command)))?;
    Ok(Output {
        success: output.status.success(),
        status: output.status.to_string(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}
