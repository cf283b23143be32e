//! A directory laid out as a root file system (the initramfs's or a root slot's), filled with programs (stripped
//! of debug information), exactly the shared libraries they link, and kernel modules with what they need.

use std::path::{Path, PathBuf};

use routerd_init::modules::ModuleIndex;

use crate::{
    error::{ImageError, IoContext},
    kernel::Kernel,
    tools,
};

pub struct Tree {
    pub dir: PathBuf,
}

impl Tree {
    pub fn new(dir: PathBuf, empty_dirs: &[&str]) -> Result<Tree, ImageError> {
        for sub in empty_dirs {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path).context(|| format!("creating {}", path.display()))?;
        }
        Ok(Tree { dir })
    }

    fn destination(&self, inside: &str) -> Result<PathBuf, ImageError> {
        let path = self.dir.join(inside.trim_start_matches('/'));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).context(|| format!("creating {}", parent.display()))?;
        }
        Ok(path)
    }

    pub fn write(&self, inside: &str, contents: &[u8]) -> Result<(), ImageError> {
        let path = self.destination(inside)?;
        std::fs::write(&path, contents).context(|| format!("writing {}", path.display()))
    }

    /// Copies the program `source` to `inside` without its debug information, and the libraries it links.
    pub fn add_program(&self, source: &Path, inside: &str) -> Result<(), ImageError> {
        let path = self.destination(inside)?;
        let (from, to) = (source.display().to_string(), path.display().to_string());
        tools::run("strip", &["--strip-debug", "-o", &to, &from], &format!("copying {from}"))?;
        self.add_libraries_of(source)
    }

    /// The shared libraries `binary` loads (as `ldd` finds them on this machine), at the same paths.
    fn add_libraries_of(&self, binary: &Path) -> Result<(), ImageError> {
        let listing =
            tools::run("ldd", &[&binary.display().to_string()], &format!("listing what {} links", binary.display()));
        // A static program: "not a dynamic executable" (ldd exits 1).
        let Ok(listing) = listing else { return Ok(()) };
        for library in parse_ldd(&listing) {
            let inside = library.display().to_string();
            let path = self.destination(&inside)?;
            if !path.exists() {
                std::fs::copy(&library, &path).context(|| format!("copying {}", library.display()))?;
            }
        }
        Ok(())
    }

    /// Copies the modules `names` need (built-in ones skipped) and writes their load order to
    /// `/etc/modules.load`, which init reads.
    pub fn add_modules(&self, kernel: &Kernel, names: &[&str]) -> Result<usize, ImageError> {
        let source = kernel.modules_dir();
        let index = ModuleIndex::load(&source)?;
        let builtin = std::fs::read_to_string(source.join("modules.builtin")).unwrap_or_default();
        let builtin: Vec<String> = builtin.lines().map(routerd_init::modules::module_name).collect();
        let wanted: Vec<&str> = names.iter().copied().filter(|n| !builtin.contains(&n.replace('-', "_"))).collect();
        let order = index.load_order(&wanted)?;
        let inside = format!("lib/modules/{}", kernel.release);
        for file in &order {
            let path = self.destination(&format!("{inside}/{file}"))?;
            std::fs::copy(source.join(file), &path).context(|| format!("copying the module {file}"))?;
        }
        self.write("etc/modules.load", format!("{}\n", order.join("\n")).as_bytes())?;
        Ok(order.len())
    }
}

/// The library paths in `ldd` output (the vDSO, which is no file, left out).
fn parse_ldd(listing: &str) -> Vec<PathBuf> {
    listing
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once("=>") {
                Some((_, resolved)) => resolved.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// The size of everything under `dir`, in bytes.
pub fn size_of(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => size_of(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_the_library_files() {
        let listing = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibnftables.so.1 => /lib/x86_64-linux-gnu/libnftables.so.1 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            parse_ldd(listing),
            [PathBuf::from("/lib/x86_64-linux-gnu/libnftables.so.1"), PathBuf::from("/lib64/ld-linux-x86-64.so.2")]
        );
    }
}
