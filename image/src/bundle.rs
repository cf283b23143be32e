//! `routerd-image bundle` and `keygen`: a system update (kernel, initramfs, root, and a manifest with the size
//! and SHA-256 of each, signed with ed25519 when a key is given), in the format routerd checks
//! (`routerd::update::system::bundle`).

use std::{
    collections::BTreeMap,
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use ring::signature::{Ed25519KeyPair, KeyPair};
use routerd::update::system::bundle::{FORMAT, MANIFEST, Manifest, Part, SIGNATURE};

use crate::{
    builder::{self, Sources},
    error::{ImageError, IoContext},
    tools,
};

#[derive(Debug, clap::Args)]
pub struct BundleArgs {
    /// The bundle to write (`rtrctl update --image FILE` installs it).
    #[arg(long)]
    pub out: PathBuf,
    /// Build the system around this routerd binary instead of the one beside this program.
    #[arg(long)]
    pub routerd: Option<PathBuf>,
    /// What `rtrctl update status` calls this system (default: routerd's version and the build time).
    #[arg(long)]
    pub version_name: Option<String>,
    /// Sign it with this private key (from `routerd-image keygen`).
    #[arg(long)]
    pub sign: Option<PathBuf>,
    #[command(flatten)]
    pub sources: crate::SourceArgs,
}

#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// The private key file to write (mode 0600); the public key goes to FILE.pub and is printed.
    #[arg(long)]
    pub out: PathBuf,
}

fn sha256_file(path: &Path) -> Result<(u64, String), ImageError> {
    crate::sha256_file(path).context(|| format!("reading {}", path.display()))
}

fn load_key(path: &Path) -> Result<Ed25519KeyPair, ImageError> {
    let bytes = std::fs::read(path).context(|| format!("reading the key {}", path.display()))?;
    Ed25519KeyPair::from_pkcs8(&bytes)
        .map_err(|_| ImageError::Invalid(format!("--sign {}: not a key from routerd-image keygen", path.display())))
}

pub fn bundle(args: &BundleArgs) -> Result<(), ImageError> {
    if let Some(name) = &args.version_name
        && (name.is_empty() || name.len() > 128 || name.chars().any(|c| c.is_control() || c.is_whitespace()))
    {
        return Err(ImageError::Invalid(format!("--version-name {name:?}: 1 to 128 characters, no spaces")));
    }
    // Checked before the work: a key that does not load, a routerd that is not there.
    let key = args.sign.as_deref().map(load_key).transpose()?;
    if let Some(routerd) = &args.routerd
        && !routerd.is_file()
    {
        return Err(ImageError::Invalid(format!("--routerd {}: no such file", routerd.display())));
    }
    tools::check()?;
    let binaries = builder::binaries_dir(&args.sources.binaries, builder::SYSTEM_PROGRAMS)?;
    let work = tempfile::Builder::new().prefix("routerd-bundle-").tempdir().context(|| "a work directory".into())?;
    let system = builder::make_system(
        &Sources {
            binaries: &binaries,
            routerd: args.routerd.as_deref(),
            cache: args.sources.cache.clone(),
            kernel_deb: args.sources.kernel_deb.as_deref(),
            version: args.version_name.clone(),
            work: work.path(),
        },
        1,
        4,
    )?;
    println!("[4/4] bundle {}", args.out.display());
    let parts = [("vmlinuz", &system.kernel), ("initrd", &system.initramfs), ("root.squashfs", &system.root)];
    let mut manifest = Manifest {
        format: FORMAT,
        version: system.version.clone(),
        kernel_release: system.kernel_release,
        parts: BTreeMap::new(),
    };
    for (name, path) in parts {
        let (size, sha256) = sha256_file(path)?;
        manifest.parts.insert(name.to_string(), Part { size, sha256 });
    }
    let manifest_bytes =
        serde_json::to_vec_pretty(&manifest).map_err(|e| ImageError::Invalid(format!("the manifest: {e}")))?;
    let name = args.out.file_name().ok_or_else(|| ImageError::Invalid("--out: not a file name".into()))?;
    let dir = args.out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let partial = dir.join(format!(".{}.partial", name.to_string_lossy()));
    let written = write_tar(&partial, &manifest_bytes, key.as_ref(), &parts).and_then(|()| {
        std::fs::rename(&partial, &args.out).context(|| format!("moving the bundle to {}", args.out.display()))
    });
    if let Err(error) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(error);
    }
    let size = std::fs::metadata(&args.out).map(|m| m.len()).unwrap_or(0);
    println!(
        "done: {} — system {} ({:.1} MiB, {})",
        args.out.display(),
        system.version,
        size as f64 / (1u64 << 20) as f64,
        if key.is_some() { "signed" } else { "unsigned" }
    );
    Ok(())
}

fn write_tar(
    path: &Path,
    manifest: &[u8],
    key: Option<&Ed25519KeyPair>,
    parts: &[(&str, &PathBuf)],
) -> Result<(), ImageError> {
    let file = std::fs::File::create(path).context(|| format!("creating {}", path.display()))?;
    let mut builder = tar::Builder::new(file);
    let mut add = |name: &str, bytes: &[u8]| -> Result<(), ImageError> {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, bytes).context(|| format!("writing {name} into the bundle"))
    };
    add(MANIFEST, manifest)?;
    if let Some(key) = key {
        add(SIGNATURE, key.sign(manifest).as_ref())?;
    }
    for (name, source) in parts {
        let bytes = std::fs::read(source).context(|| format!("reading {}", source.display()))?;
        add(name, &bytes)?;
    }
    let file = builder.into_inner().context(|| "finishing the bundle".into())?;
    file.sync_all().context(|| "flushing the bundle".into())
}

pub fn keygen(args: &KeygenArgs) -> Result<(), ImageError> {
    let random = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&random).map_err(|_| ImageError::Invalid("no randomness".into()))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| ImageError::Invalid("a bad key".into()))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&args.out)
        .context(|| format!("creating {} (an existing key is never overwritten)", args.out.display()))?;
    file.write_all(pkcs8.as_ref()).context(|| format!("writing {}", args.out.display()))?;
    let public = routerd_proto::hex(pair.public_key().as_ref());
    let public_path = PathBuf::from(format!("{}.pub", args.out.display()));
    std::fs::write(&public_path, format!("{public}\n")).context(|| format!("writing {}", public_path.display()))?;
    println!("private key: {} (keep it off the router)", args.out.display());
    println!("public key:  {public}");
    println!("on the router, routerd.json: \"update_signing_keys\": [\"{public}\"]");
    Ok(())
}
