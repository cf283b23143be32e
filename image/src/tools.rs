//! The host programs the build runs, each with the Debian package it comes in, and how they are run.

use std::{path::PathBuf, process::Command};

use crate::error::ImageError;

/// (program, Debian package)
pub const TOOLS: &[(&str, &str)] = &[
    ("sfdisk", "fdisk"),
    ("mformat", "mtools"),
    ("mcopy", "mtools"),
    ("syslinux", "syslinux"),
    ("mksquashfs", "squashfs-tools"),
    ("mke2fs", "e2fsprogs"),
    ("e2fsck", "e2fsprogs"),
    ("depmod", "kmod"),
    ("dpkg-deb", "dpkg"),
    ("apt-get", "apt"),
    ("apt-cache", "apt"),
    ("ldd", "libc-bin"),
    ("strip", "binutils"),
];

/// Files from packages (not programs) the build needs.
pub const SYSLINUX_MBR: (&str, &str) = ("/usr/lib/syslinux/mbr/mbr.bin", "syslinux");

/// Where a program is: PATH, then the sbin directories an ordinary user's PATH often lacks.
pub fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Every tool present, or the first missing one with its package.
pub fn check() -> Result<(), ImageError> {
    for (tool, package) in TOOLS {
        if find(tool).is_none() {
            return Err(ImageError::MissingTool { tool, package });
        }
    }
    if !std::path::Path::new(SYSLINUX_MBR.0).exists() {
        return Err(ImageError::MissingTool { tool: SYSLINUX_MBR.0, package: SYSLINUX_MBR.1 });
    }
    Ok(())
}

/// Runs `program args…`; its stdout, or an error with what it printed.
pub fn run(program: &str, args: &[&str], what: &str) -> Result<String, ImageError> {
    run_in(None, program, args, what)
}

/// [`run`] in the directory `dir`.
pub fn run_in(dir: Option<&std::path::Path>, program: &str, args: &[&str], what: &str) -> Result<String, ImageError> {
    let path = find(program).ok_or(ImageError::Invalid(format!("{program} is not installed")))?;
    let mut command = Command::new(&path);
    command.args(args);
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let output = command.output().map_err(|e| ImageError::Tool {
        program: program.into(),
        what: what.into(),
        detail: e.to_string(),
    })?;
    if !output.status.success() {
        let detail = format!(
            "{}: {}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim(),
            String::from_utf8_lossy(&output.stdout).trim()
        );
        return Err(ImageError::Tool { program: program.into(), what: what.into(), detail });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
