//! init's log: every line to the serial console at once, and to `/perm/log/boot.log` once /perm is mounted
//! (what came before is kept in memory until then). The previous boot's log is kept as `boot.previous.log`.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    path::Path,
    sync::{Arc, Mutex},
};

/// The log file stops growing here (a routerd that logs in a loop must not fill /perm).
const MAX_LOG_BYTES: u64 = 16 << 20;

#[derive(Default)]
struct Sinks {
    console: Option<File>,
    file: Option<File>,
    written: u64,
    early: Vec<String>,
}

#[derive(Clone, Default)]
pub(crate) struct Log {
    sinks: Arc<Mutex<Sinks>>,
}

impl Log {
    pub(crate) fn new() -> Log {
        let console = OpenOptions::new().write(true).open("/dev/console").ok();
        Log { sinks: Arc::new(Mutex::new(Sinks { console, ..Sinks::default() })) }
    }

    pub(crate) fn line(&self, text: &str) {
        let mut guard = self.sinks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let sinks = &mut *guard;
        let line = format!("{text}\n");
        match &mut sinks.console {
            Some(console) => {
                let _ = console.write_all(line.as_bytes());
            }
            None => eprint!("{line}"),
        }
        match sinks.file.as_mut() {
            Some(file) if sinks.written < MAX_LOG_BYTES => {
                let _ = file.write_all(line.as_bytes());
                sinks.written += line.len() as u64;
                if sinks.written >= MAX_LOG_BYTES {
                    let _ = file.write_all(b"(log full: the rest of this boot is on the console only)\n");
                }
            }
            Some(_) => {}
            None => sinks.early.push(line),
        }
    }

    /// Starts writing to `DIR/boot.log` (the previous one becomes `boot.previous.log`), with what was logged
    /// before.
    pub(crate) fn persist(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let current = dir.join("boot.log");
        if current.exists() {
            std::fs::rename(&current, dir.join("boot.previous.log"))?;
        }
        let mut file = File::create(&current)?;
        let mut sinks = self.sinks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for line in std::mem::take(&mut sinks.early) {
            file.write_all(line.as_bytes())?;
            sinks.written += line.len() as u64;
        }
        sinks.file = Some(file);
        Ok(())
    }

    /// Flushes and closes the file (before /perm is unmounted).
    pub(crate) fn close_file(&self) {
        let mut sinks = self.sinks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(file) = sinks.file.take() {
            let _ = file.sync_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_lines_reach_the_file_and_the_previous_boot_is_kept() {
        let dir = tempfile::tempdir().expect("temp");
        std::fs::write(dir.path().join("boot.log"), "last boot\n").expect("write");
        let log = Log::default();
        log.line("before /perm");
        log.persist(dir.path()).expect("persist");
        log.line("after /perm");
        log.close_file();
        let text = std::fs::read_to_string(dir.path().join("boot.log")).expect("read");
        assert_eq!(text, "before /perm\nafter /perm\n");
        assert_eq!(std::fs::read_to_string(dir.path().join("boot.previous.log")).expect("read"), "last boot\n");
    }
}
