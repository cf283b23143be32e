//! Debian 12's kernel (`linux-image-amd64`), fetched with apt into a cache and unpacked there once, with its
//! `modules.dep` made by depmod (the package has none: the package manager's hooks make it on install).

use std::path::{Path, PathBuf};

use crate::{
    error::{ImageError, IoContext},
    tools,
};

pub struct Kernel {
    /// `6.1.0-57-amd64`
    pub release: String,
    /// The unpacked package.
    pub root: PathBuf,
}

impl Kernel {
    pub fn vmlinuz(&self) -> PathBuf {
        self.root.join("boot").join(format!("vmlinuz-{}", self.release))
    }

    pub fn modules_dir(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.release)
    }
}

/// The kernel package `linux-image-amd64` stands for now (`linux-image-6.1.0-57-amd64`).
fn current_package() -> Result<String, ImageError> {
    let depends = tools::run("apt-cache", &["depends", "linux-image-amd64"], "finding the kernel package")?;
    depends
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(str::trim)
        .find(|p| p.starts_with("linux-image-"))
        .map(str::to_string)
        .ok_or_else(|| {
            ImageError::Invalid("apt knows no linux-image-amd64: run apt-get update, or pass --kernel-deb".into())
        })
}

/// The kernel from `deb` (a `linux-image-*.deb`), or else the current one from apt, downloaded into `cache`.
pub fn fetch(cache: &Path, deb: Option<&Path>) -> Result<Kernel, ImageError> {
    std::fs::create_dir_all(cache).context(|| format!("creating the cache {}", cache.display()))?;
    // One build at a time fills the cache (two that start together would download and unpack over each other).
    let _lock = lock(cache)?;
    let deb = match deb {
        Some(deb) => {
            if !deb.is_file() {
                return Err(ImageError::Invalid(format!("--kernel-deb {}: no such file", deb.display())));
            }
            deb.to_path_buf()
        }
        None => download(cache, &current_package()?)?,
    };
    unpack(cache, &deb)
}

/// The kernel package of release `release` (`linux-image-6.1.0-57-amd64`), from the cache or apt.
pub fn fetch_release(cache: &Path, release: &str) -> Result<Kernel, ImageError> {
    std::fs::create_dir_all(cache).context(|| format!("creating the cache {}", cache.display()))?;
    let _lock = lock(cache)?;
    let deb = download(cache, &format!("linux-image-{release}"))?;
    unpack(cache, &deb)
}

/// `package`'s .deb in the cache, downloaded with apt-get when it is not there yet.
fn download(cache: &Path, package: &str) -> Result<PathBuf, ImageError> {
    if let Some(deb) = cached_deb(cache, package)? {
        return Ok(deb);
    }
    println!("  downloading {package} with apt-get");
    tools::run_in(Some(cache), "apt-get", &["download", "-q", package], "downloading the kernel")?;
    cached_deb(cache, package)?
        .ok_or_else(|| ImageError::Invalid(format!("apt-get download left no {package}_*.deb in {}", cache.display())))
}

/// The package unpacked in the cache (once), with its modules indexed.
fn unpack(cache: &Path, deb: &Path) -> Result<Kernel, ImageError> {
    let stem = deb.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    let root = cache.join(format!("unpacked-{stem}"));
    if !root.join("lib/modules").is_dir() {
        let partial = cache.join(format!(".unpacking-{stem}"));
        let _ = std::fs::remove_dir_all(&partial);
        let shown = deb.display().to_string();
        tools::run("dpkg-deb", &["-x", &shown, &partial.display().to_string()], "unpacking the kernel")?;
        let _ = std::fs::remove_dir_all(&root);
        std::fs::rename(&partial, &root).context(|| format!("moving the kernel into {}", root.display()))?;
    }
    let release = std::fs::read_dir(root.join("lib/modules"))
        .context(|| format!("reading {}/lib/modules", root.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .next()
        .ok_or_else(|| ImageError::Invalid(format!("{shown}: no modules in the package", shown = deb.display())))?;
    let kernel = Kernel { release, root };
    if !kernel.vmlinuz().is_file() {
        return Err(ImageError::Invalid(format!("{}: no kernel image in the package", deb.display())));
    }
    if !kernel.modules_dir().join("modules.dep").is_file() {
        let base = kernel.root.display().to_string();
        tools::run("depmod", &["-b", &base, &kernel.release], "indexing the kernel's modules")?;
    }
    Ok(kernel)
}

/// An exclusive lock on the cache, held until the returned file is dropped.
fn lock(cache: &Path) -> Result<std::fs::File, ImageError> {
    use std::os::fd::AsRawFd;
    let path = cache.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .context(|| format!("opening {}", path.display()))?;
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(ImageError::Io {
            what: format!("locking {}", path.display()),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(file)
}

fn cached_deb(cache: &Path, package: &str) -> Result<Option<PathBuf>, ImageError> {
    let prefix = format!("{package}_");
    Ok(std::fs::read_dir(cache).context(|| format!("reading {}", cache.display()))?.flatten().map(|e| e.path()).find(
        |p| {
            p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
                && p.extension().is_some_and(|e| e == "deb")
        },
    ))
}
