//! routerd-image: builds the appliance's disk image (see `routerd-image build --help`).

mod builder;
mod bundle;
mod cpio;
mod disk;
mod error;
mod kernel;
mod tools;
mod tree;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "routerd-image", version, about = "Builds the routerd appliance: a bootable disk image")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build a whole-disk image: MBR, boot partition (syslinux, kernel, initramfs), root slots A and B, and /perm
    /// filled from --perm. Runs as an ordinary user; write the result to the router's disk with dd.
    Build(BuildArgs),
    /// Build a system update bundle (kernel, initramfs, root and a signed manifest) for `rtrctl update --image`.
    Bundle(bundle::BundleArgs),
    /// Make an ed25519 key pair for signing bundles (routerd.json `update_signing_keys` takes the public key).
    Keygen(bundle::KeygenArgs),
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

/// Where a system's programs and kernel come from (`build` and `bundle` alike).
#[derive(Debug, clap::Args)]
pub struct SourceArgs {
    /// Where routerd, rtrctl and routerd-init are (default: the directory this program is in, so that
    /// `cargo build --release` then `target/release/routerd-image build …` uses that build).
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

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build(args) => builder::build(&args),
        Command::Bundle(args) => bundle::bundle(&args),
        Command::Keygen(args) => bundle::keygen(&args),
    };
    if let Err(error) = result {
        eprintln!("routerd-image: {error}");
        std::process::exit(1);
    }
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
