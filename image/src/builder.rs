//! `routerd-image build`: each step says what it does and how big its result is; the image appears at --out only
//! once it is whole (a failed build leaves nothing there).

use std::path::{Path, PathBuf};

use routerd_init::layout;

use crate::{
    BuildArgs, cpio,
    disk::{self, Layout},
    error::{ImageError, IoContext},
    kernel, tools,
    tree::{self, Tree},
};

/// Disk and file system drivers, in the initramfs (Debian's kernel has them all as modules).
const INITRAMFS_MODULES: &[&str] =
    &["ahci", "ata_piix", "sd_mod", "virtio_pci", "virtio_blk", "virtio_scsi", "squashfs"];

/// What routerd needs of the kernel, in the root: /perm's file system, NICs (the apu2's i210, qemu's models),
/// nftables with conntrack and NAT, bridges and VLANs, WireGuard, the watchdogs (apu2, qemu).
const ROOT_MODULES: &[&str] = &[
    "ext4",
    "crc32c_generic",
    "e1000",
    "e1000e",
    "igb",
    "virtio_net",
    "nfnetlink",
    "nf_tables",
    "nf_conntrack",
    "nft_ct",
    "nf_nat",
    "nft_nat",
    "nft_masq",
    "nft_redir",
    "nft_chain_nat",
    "nft_fib_inet",
    "nft_fib_ipv4",
    "nft_fib_ipv6",
    "nft_limit",
    "nft_reject_inet",
    "nft_log",
    "nft_quota",
    "bridge",
    "8021q",
    "wireguard",
    "sp5100_tco",
    "i6300esb",
    "vfat",
    "nls_cp437",
    "nls_ascii",
];

/// What a system is made of, besides the kernel.
pub const SYSTEM_PROGRAMS: &[&str] = &["routerd", "rtrctl", "routerd-init"];

const MIB: f64 = (1u64 << 20) as f64;

fn step(number: usize, text: &str) {
    println!("[{number}/6] {text}");
}

pub fn build(args: &BuildArgs) -> Result<(), ImageError> {
    let layout = Layout::for_size(args.size)?;
    if !valid_hostname(&args.hostname) {
        return Err(ImageError::Invalid(format!(
            "--hostname {:?}: use letters, digits and dashes (at most 63), not starting or ending with a dash",
            args.hostname
        )));
    }
    let partial = partial_path(&args.out)?;
    let work = tempfile::Builder::new().prefix("routerd-image-").tempdir().context(|| "a work directory".into())?;
    step(1, &format!("checking --perm {}", args.perm.display()));
    let perm = work.path().join("perm");
    stage_perm(&args.perm, &perm, work.path())?;
    println!("  /perm contents: {:.1} MiB", tree::size_of(&perm) as f64 / MIB);

    step(2, "checking host tools and routerd's binaries");
    tools::check()?;
    let binaries = binaries_dir(&args.sources.binaries, SYSTEM_PROGRAMS)?;

    let system = make_system(
        &Sources {
            binaries: &binaries,
            routerd: None,
            cache: args.sources.cache.clone(),
            kernel_deb: args.sources.kernel_deb.as_deref(),
            version: args.version_name.clone(),
            work: work.path(),
        },
        3,
        6,
    )?;
    let (kernel_path, initramfs, squashfs) = (system.kernel.clone(), system.initramfs.clone(), system.root.clone());

    step(6, &format!("disk image {} ({} MiB)", args.out.display(), args.size >> 20));
    let parts = disk::Parts {
        kernel: &kernel_path,
        initramfs: &initramfs,
        root: &squashfs,
        perm: &perm,
        syslinux_cfg: syslinux_cfg(&args.hostname),
    };
    let assembled = disk::assemble(&partial, layout, &parts).and_then(|()| {
        std::fs::rename(&partial, &args.out).context(|| format!("moving the image to {}", args.out.display()))
    });
    if let Err(error) = assembled {
        let _ = std::fs::remove_file(&partial);
        return Err(error);
    }
    for (name, n) in [("boot", 1), ("root A", 2), ("root B", 3), ("/perm", 4)] {
        let (start, length) = layout.partition(n);
        println!(
            "  partition {n} {name}: {:.0} MiB at {:.0} MiB (PARTUUID {})",
            length as f64 / MIB,
            start as f64 / MIB,
            layout::partuuid(n)
        );
    }
    println!(
        "done: {} (write it to the router's disk: dd if={} of=/dev/DISK bs=4M conv=fsync)",
        args.out.display(),
        args.out.display()
    );
    Ok(())
}

/// Where a system's parts come from.
pub struct Sources<'a> {
    /// routerd-init and rtrctl (and routerd, unless `routerd` names another).
    pub binaries: &'a Path,
    pub routerd: Option<&'a Path>,
    pub cache: Option<PathBuf>,
    pub kernel_deb: Option<&'a Path>,
    /// The system's version name (default: routerd's version and the build time).
    pub version: Option<String>,
    pub work: &'a Path,
}

/// A system: what a root slot boots from.
pub struct System {
    pub version: String,
    pub kernel_release: String,
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
    pub root: PathBuf,
}

/// The kernel, the initramfs and the root file system, as steps `first` to `first + 2` of `total`.
pub fn make_system(sources: &Sources, first: usize, total: usize) -> Result<System, ImageError> {
    let step = |number: usize, text: &str| println!("[{number}/{total}] {text}");
    let version = sources.version.clone().unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        format!("{}-{now}", env!("CARGO_PKG_VERSION"))
    });
    step(first, "kernel (Debian's linux-image-amd64)");
    let cache = sources.cache.clone().unwrap_or_else(default_cache);
    let kernel = kernel::fetch(&cache, sources.kernel_deb)?;
    let kernel_size = std::fs::metadata(kernel.vmlinuz()).map(|m| m.len()).unwrap_or(0);
    println!("  {} ({:.1} MiB)", kernel.release, kernel_size as f64 / MIB);

    step(first + 1, "initramfs (finds the root slot and mounts it)");
    let initramfs_tree = Tree::new(sources.work.join("initramfs"), &["dev", "proc", "sys", "root", "etc"])?;
    initramfs_tree.add_program(&sources.binaries.join("routerd-init"), "init")?;
    initramfs_tree.write("initramfs", b"routerd initramfs\n")?;
    let count = initramfs_tree.add_modules(&kernel, INITRAMFS_MODULES)?;
    let initramfs = sources.work.join("initrd.gz");
    let archive = cpio::initramfs(&initramfs_tree.dir, &[("dev/console", 5, 1)])?;
    std::fs::write(&initramfs, &archive).context(|| "writing the initramfs".into())?;
    println!("  {count} modules, {:.1} MiB", archive.len() as f64 / MIB);

    step(first + 2, "root file system (squashfs: routerd, rtrctl, init, e2fsck, their libraries, modules)");
    let root_tree =
        Tree::new(sources.work.join("root"), &["dev", "proc", "sys", "run", "tmp", "perm", "boot", "etc", "root"])?;
    root_tree.add_program(&sources.binaries.join("routerd-init"), "sbin/init")?;
    let routerd = sources.routerd.map(Path::to_path_buf).unwrap_or_else(|| sources.binaries.join("routerd"));
    root_tree.add_program(&routerd, "usr/bin/routerd")?;
    root_tree.add_program(&sources.binaries.join("rtrctl"), "usr/bin/rtrctl")?;
    let e2fsck = tools::find("e2fsck").ok_or(ImageError::MissingTool { tool: "e2fsck", package: "e2fsprogs" })?;
    root_tree.add_program(&e2fsck, "sbin/e2fsck")?;
    let count = root_tree.add_modules(&kernel, ROOT_MODULES)?;
    root_tree.write(
        "etc/routerd-release",
        format!("system {}\nrouterd {}\nkernel {}\n", version, env!("CARGO_PKG_VERSION"), kernel.release).as_bytes(),
    )?;
    let unpacked = tree::size_of(&root_tree.dir);
    let squashfs = sources.work.join("root.squashfs");
    tools::run(
        "mksquashfs",
        &[
            &root_tree.dir.display().to_string(),
            &squashfs.display().to_string(),
            "-comp",
            "zstd",
            "-noappend",
            "-all-root",
            "-quiet",
            "-no-progress",
        ],
        "making the root file system",
    )?;
    let packed = std::fs::metadata(&squashfs).map(|m| m.len()).unwrap_or(0);
    println!("  {count} modules; {:.1} MiB ({:.1} MiB unpacked)", packed as f64 / MIB, unpacked as f64 / MIB);

    Ok(System { version, kernel_release: kernel.release.clone(), kernel: kernel.vmlinuz(), initramfs, root: squashfs })
}

fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

pub fn syslinux_cfg(hostname: &str) -> String {
    layout::syslinux_cfg(layout::Slot::A, hostname)
}

/// The workspace's programs: what `binaries` names, else the directory this program is in; `programs` must be
/// there.
pub fn binaries_dir(binaries: &Option<PathBuf>, programs: &[&str]) -> Result<PathBuf, ImageError> {
    let dir = match binaries {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf))
            .ok_or(ImageError::Invalid("cannot tell where this program is: pass --binaries".into()))?,
    };
    for program in programs {
        if !dir.join(program).is_file() {
            return Err(ImageError::Invalid(format!(
                "no {program} in {}: build it first (cargo build --release --workspace --bins) or pass --binaries",
                dir.display()
            )));
        }
    }
    Ok(dir)
}

pub fn default_cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join("routerd-image")
}

/// `DIR/.NAME.partial`, next to --out so that the final rename stays on one file system.
fn partial_path(out: &Path) -> Result<PathBuf, ImageError> {
    let name =
        out.file_name().ok_or_else(|| ImageError::Invalid(format!("--out {}: not a file name", out.display())))?;
    let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(ImageError::Invalid(format!(
            "--out {}: the directory {} does not exist",
            out.display(),
            dir.display()
        )));
    }
    Ok(dir.join(format!(".{}.partial", name.to_string_lossy())))
}

/// Copies --perm into the image's staging directory after checking it as routerd would load it.
fn stage_perm(perm: &Path, staging: &Path, work: &Path) -> Result<(), ImageError> {
    let refuse = |file: &str, reason: String| ImageError::Perm { dir: perm.to_path_buf(), file: file.into(), reason };
    if !perm.is_dir() {
        return Err(ImageError::Invalid(format!("--perm {}: not a directory", perm.display())));
    }
    if !perm.join(routerd::config::INTERFACES_JSON).is_file() {
        return Err(refuse(
            routerd::config::INTERFACES_JSON,
            "missing: it names the router's NICs by MAC address (uplink0, lan0, …)".into(),
        ));
    }
    copy_tree(perm, staging)?;
    let config = routerd::config::Config::load(staging);
    if let Some(problem) = config.problems.first() {
        return Err(refuse(&problem.file, problem.message.clone()));
    }
    // The clock's floor: a router without a clock battery starts no earlier than this build (so identities
    // issued before it are valid at once, before NTP answers).
    let now = std::time::SystemTime::now();
    if routerd::timesync::floor::load(staging).ok().flatten().is_none_or(|saved| saved < now) {
        routerd::timesync::floor::save(staging, now)
            .map_err(|e| ImageError::Invalid(format!("writing the clock's floor into /perm: {e}")))?;
    }
    // The CA and identities, leases and saved uplink state: checked on a copy (the check may write to it).
    if perm.join("tls").exists() {
        let trial = work.join("perm-check");
        copy_tree(perm, &trial)?;
        routerd::backup::check::check_tree(&trial).map_err(|error| match error {
            routerd::backup::BackupError::WouldNotStart { path, reason } => refuse(&path, reason),
            other => refuse("", other.to_string()),
        })?;
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), ImageError> {
    std::fs::create_dir_all(to).context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).context(|| format!("reading {}", from.display()))?.flatten() {
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().context(|| format!("reading {}", source.display()))?;
        if kind.is_dir() {
            copy_tree(&source, &target)?;
        } else if kind.is_file() {
            std::fs::copy(&source, &target).context(|| format!("copying {}", source.display()))?;
        }
    }
    Ok(())
}
