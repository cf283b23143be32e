//! routerd-image: builds the appliance's disk image (see `routerd-image build --help`).

use clap::{Parser, Subcommand};
use routerd_image::{BuildArgs, builder, bundle};

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
