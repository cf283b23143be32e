//! Kernel modules by name, with their dependencies from `modules.dep` (as `depmod` writes it), in the order
//! they load: what the image builder copies into a root file system and what init loads at boot.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("no module {0:?} in modules.dep (is it built in, or named differently?)")]
    Unknown(String),
}

/// `modules.dep` of one kernel: each module's file (relative to the modules directory) and what it needs.
#[derive(Clone, Debug, Default)]
pub struct ModuleIndex {
    files: BTreeMap<String, String>,
    needs: BTreeMap<String, Vec<String>>,
}

/// `nf_tables` for `kernel/net/netfilter/nf_tables.ko` (dashes and underscores are the same to the kernel).
pub fn module_name(file: &str) -> String {
    let base = file.rsplit('/').next().unwrap_or(file);
    let base = base.split(".ko").next().unwrap_or(base);
    base.replace('-', "_")
}

impl ModuleIndex {
    pub fn parse(text: &str) -> ModuleIndex {
        let mut index = ModuleIndex::default();
        for line in text.lines() {
            let Some((file, deps)) = line.split_once(':') else { continue };
            let name = module_name(file.trim());
            index.files.insert(name.clone(), file.trim().to_string());
            index.needs.insert(name, deps.split_whitespace().map(module_name).collect());
        }
        index
    }

    /// Reads `DIR/modules.dep`.
    pub fn load(dir: &Path) -> Result<ModuleIndex, ModuleError> {
        let path = dir.join("modules.dep");
        let text = std::fs::read_to_string(&path).map_err(|source| ModuleError::Read { path, source })?;
        Ok(ModuleIndex::parse(&text))
    }

    /// The files to load for `names`, each after what it needs, each once.
    pub fn load_order(&self, names: &[&str]) -> Result<Vec<String>, ModuleError> {
        let mut order = Vec::new();
        let mut seen = BTreeSet::new();
        for name in names {
            self.visit(&name.replace('-', "_"), &mut seen, &mut order)?;
        }
        Ok(order)
    }

    fn visit(&self, name: &str, seen: &mut BTreeSet<String>, order: &mut Vec<String>) -> Result<(), ModuleError> {
        if !seen.insert(name.to_string()) {
            return Ok(());
        }
        let file = self.files.get(name).ok_or_else(|| ModuleError::Unknown(name.to_string()))?;
        for need in self.needs.get(name).into_iter().flatten() {
            self.visit(need, seen, order)?;
        }
        order.push(file.clone());
        Ok(())
    }
}

/// The parameters the kernel command line gives module `name` (`name.key=value`, as modprobe reads them), as
/// finit_module takes them: `key=value key2=value2`.
pub fn parameters_from_cmdline(cmdline: &str, name: &str) -> String {
    let name = name.replace('-', "_");
    cmdline
        .split_whitespace()
        .filter_map(|word| {
            let (module, parameter) = word.split_once('.')?;
            (module.replace('-', "_") == name && parameter.contains('=')).then_some(parameter)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Loads the module in `path` into the running kernel with `parameters` (`key=value …`). Already loaded counts
/// as loaded.
pub fn insert(path: &Path, parameters: &str) -> std::io::Result<()> {
    let file = std::fs::File::open(path)?;
    let parameters = std::ffi::CString::new(parameters)?;
    // SAFETY: finit_module reads the open descriptor and a NUL-terminated parameter string.
    let result = unsafe {
        libc::syscall(libc::SYS_finit_module, std::os::fd::AsRawFd::as_raw_fd(&file), parameters.as_ptr(), 0)
    };
    if result == 0 {
        return Ok(());
    }
    let error = std::io::Error::last_os_error();
    if error.raw_os_error() == Some(libc::EEXIST) { Ok(()) } else { Err(error) }
}

/// What [`load_listed`] did.
pub struct Loaded {
    pub loaded: usize,
    /// `name (why)` for each module that did not load.
    pub failed: Vec<String>,
}

/// Loads the modules listed in `list` (files relative to /lib/modules/RELEASE, in load order, as the image
/// builder writes them), each with its parameters from the kernel command line. A module the hardware does not
/// want (a CPU feature missing, no such device) is skipped and named in [`Loaded::failed`].
pub fn load_listed(list: &Path) -> Result<Loaded, String> {
    let text = std::fs::read_to_string(list).map_err(|e| format!("reading {}: {e}", list.display()))?;
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_err(|e| format!("the kernel's release is unknown: {e}"))?;
    let base = Path::new("/lib/modules").join(release.trim());
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let mut outcome = Loaded { loaded: 0, failed: Vec::new() };
    for file in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let name = module_name(file);
        match insert(&base.join(file), &parameters_from_cmdline(&cmdline, &name)) {
            Ok(()) => outcome.loaded += 1,
            Err(error) => outcome.failed.push(format!("{name} ({error})")),
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "kernel/net/netfilter/nft_masq.ko: kernel/net/netfilter/nf_nat.ko kernel/net/netfilter/nf_conntrack.ko kernel/net/netfilter/nf_tables.ko kernel/lib/libcrc32c.ko
kernel/net/netfilter/nf_nat.ko: kernel/net/netfilter/nf_conntrack.ko kernel/lib/libcrc32c.ko
kernel/net/netfilter/nf_conntrack.ko: kernel/lib/libcrc32c.ko
kernel/net/netfilter/nf_tables.ko: kernel/net/netfilter/nfnetlink.ko
kernel/net/netfilter/nfnetlink.ko:
kernel/lib/libcrc32c.ko:
kernel/drivers/net/ethernet/intel/e1000/e1000.ko:
";

    #[test]
    fn dependencies_load_first_and_once() {
        let index = ModuleIndex::parse(DEP);
        let order = index.load_order(&["nft-masq", "e1000", "nf_nat"]).expect("known modules");
        let names: Vec<String> = order.iter().map(|f| module_name(f)).collect();
        assert_eq!(names, ["libcrc32c", "nf_conntrack", "nf_nat", "nfnetlink", "nf_tables", "nft_masq", "e1000"]);
        assert!(matches!(index.load_order(&["nonsense"]), Err(ModuleError::Unknown(name)) if name == "nonsense"));
    }

    #[test]
    fn parameters_come_from_the_command_line_by_module_name() {
        let cmdline = "console=ttyS0 watchdog.stop_on_reboot=0 routerd.slot=a watchdog.handle_boot_enabled=0 \
                       i6300esb.heartbeat=60 watchdog.broken";
        assert_eq!(parameters_from_cmdline(cmdline, "watchdog"), "stop_on_reboot=0 handle_boot_enabled=0");
        assert_eq!(parameters_from_cmdline(cmdline, "i6300esb"), "heartbeat=60");
        assert_eq!(parameters_from_cmdline(cmdline, "e1000"), "");
        assert_eq!(parameters_from_cmdline("nf-tables.x=1", "nf_tables"), "x=1");
    }
}
