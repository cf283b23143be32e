//! routerd-image: the appliance's disk image, system update bundles, and the recovery network boot that
//! `routerd-recover` serves.

pub mod builder;
pub mod bundle;
pub mod cpio;
pub mod disk;
pub mod error;
pub mod kernel;
pub mod netboot;
pub mod tools;
pub mod tree;

use std::{
    io::Read,
    path::{Path, PathBuf},
};

/// The size and SHA-256 (hex) of the file at `path`, read in 1 MiB pieces (an image can be gigabytes).
pub fn sha256_file(path: &Path) -> std::io::Result<(u64, String)> {
    let mut file = std::fs::File::open(path)?;
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        context.update(&buffer[..n]);
        size += n as u64;
    }
    Ok((size, routerd_proto::hex(context.finish().as_ref())))
}

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The image file to write (replaced only once the new one is complete).
    #[arg(long)]
    pub out: PathBuf,
    /// The router's /perm: interfaces.json (the NICs by MAC), routerd.json, and tls/ when an identity was issued
    /// first with `routerd pki issue-client --perm DIR`. Checked as routerd would load it.
    #[arg(long)]
    pub perm: PathBuf,
    /// Size of the disk image: 2G, 1024M, … (at least 641M). /perm takes what the other partitions leave.
    #[arg(long, default_value = "2G", value_parser = parse_size)]
    pub size: u64,
    /// The router's hostname.
    #[arg(long, default_value = "router")]
    pub hostname: String,
    #[command(flatten)]
    pub sources: SourceArgs,
    /// What `rtrctl update status` calls this system (default: routerd's version and the build time).
    #[arg(long)]
    pub version_name: Option<String>,
}

/// Where a system's programs and kernel come from (`build`, `bundle`, and routerd-recover's network boot alike).
#[derive(Debug, clap::Args)]
pub struct SourceArgs {
    /// Where this workspace's programs are: routerd, rtrctl, routerd-init, routerd-install (default: the
    /// directory this program is in, so that `cargo build --release` then `target/release/PROGRAM …` uses that
    /// build).
    #[arg(long)]
    pub binaries: Option<PathBuf>,
    /// A linux-image-*.deb to use instead of fetching Debian's current linux-image-amd64 with apt.
    #[arg(long)]
    pub kernel_deb: Option<PathBuf>,
    /// Where the kernel package is downloaded and unpacked (default ~/.cache/routerd-image).
    #[arg(long)]
    pub cache: Option<PathBuf>,
}

fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let number: u64 = number.parse().map_err(|_| format!("{text:?} is not a size like 2G or 1024M"))?;
    let factor: u64 = match unit.to_ascii_uppercase().as_str() {
        "G" | "GB" | "GIB" => 1 << 30,
        "M" | "MB" | "MIB" => 1 << 20,
        _ => return Err(format!("{text:?}: give the size in M or G, like 2G or 1024M")),
    };
    number.checked_mul(factor).ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_take_m_and_g() {
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("700M"), Ok(700 << 20));
        assert!(parse_size("big").is_err() && parse_size("12").is_err());
    }
}
