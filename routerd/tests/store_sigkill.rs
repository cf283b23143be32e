//! Crash safety of the store: a writer process is killed with SIGKILL at random moments, hundreds of times,
//! and the file must always be a complete old or new version, never torn or empty.
//!
//! This test has its own `main` (harness = false): the same executable, run with `--writer PATH`, is the
//! process that gets killed.

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use routerd::store::{self, Mode};
use serde::{Deserialize, Serialize};

const ROUNDS: u32 = 300;

#[derive(Serialize, Deserialize)]
struct Version {
    version: u64,
    /// `length` copies of one letter chosen by the version: a torn write cannot pass the check.
    payload: String,
    length: usize,
}

fn version(n: u64) -> Version {
    // Sizes vary between 1 KiB and 200 KiB so kills land in writes of different lengths.
    let length = 1024 + (n as usize * 7919) % (200 * 1024);
    let letter = char::from(b'a' + (n % 26) as u8);
    Version { version: n, payload: std::iter::repeat_n(letter, length).collect(), length }
}

fn check(path: &Path) -> Result<u64, String> {
    let value: Version = store::read_json(path).map_err(|e| e.to_string())?;
    let expected = version(value.version);
    if value.length != expected.length || value.payload != expected.payload {
        return Err(format!("version {} has the wrong content", value.version));
    }
    Ok(value.version)
}

fn writer(path: &Path) -> ! {
    let mut n = check(path).unwrap_or(0);
    loop {
        n += 1;
        if let Err(error) = store::write_json(path, &version(n), Mode::Public) {
            eprintln!("writer: {error}");
            std::process::exit(3);
        }
    }
}

/// xorshift, seeded from the clock: the kill moments only need to be spread, not secret.
struct Jitter(u64);

impl Jitter {
    fn next_micros(&mut self, max: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % max
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let Some(position) = args.iter().position(|a| a == "--writer") {
        writer(&PathBuf::from(&args[position + 1]));
    }
    // `cargo test` passes its own flags; a name filter that excludes this test skips it.
    if args.iter().skip(1).any(|a| !a.starts_with('-') && !"store_survives_sigkill".contains(a.as_str())) {
        return ExitCode::SUCCESS;
    }

    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(error) => {
            eprintln!("tempdir: {error}");
            return ExitCode::FAILURE;
        }
    };
    let path = dir.path().join("dhcp4d").join("leases.json");
    if let Err(error) = store::write_json(&path, &version(0), Mode::Public) {
        eprintln!("initial write: {error}");
        return ExitCode::FAILURE;
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(error) => {
            eprintln!("current_exe: {error}");
            return ExitCode::FAILURE;
        }
    };
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1) | 1;
    let mut jitter = Jitter(seed);
    let mut failures = Vec::new();
    let mut versions_seen = std::collections::BTreeSet::new();
    for round in 0..ROUNDS {
        let mut child = match Command::new(&exe).arg("--writer").arg(&path).spawn() {
            Ok(child) => child,
            Err(error) => {
                eprintln!("spawning the writer: {error}");
                return ExitCode::FAILURE;
            }
        };
        std::thread::sleep(Duration::from_micros(500 + jitter.next_micros(20_000)));
        // Child::kill sends SIGKILL.
        let _ = child.kill();
        let _ = child.wait();
        match check(&path) {
            Ok(v) => {
                versions_seen.insert(v);
            }
            Err(error) => failures.push(format!("round {round}: {error}")),
        }
    }
    let leftovers = std::fs::read_dir(path.parent().unwrap_or(dir.path()))
        .map(|entries| entries.count().saturating_sub(1))
        .unwrap_or(0);
    println!(
        "store_survives_sigkill: {ROUNDS} kills, {} distinct complete versions seen, {leftovers} temporary files left by killed writers",
        versions_seen.len()
    );
    // If the writer never got to write, the test proved nothing.
    if versions_seen.len() < 10 {
        failures.push(format!("only {} distinct versions seen: the writer hardly ran", versions_seen.len()));
    }
    for failure in &failures {
        println!("FAILED: {failure}");
    }
    if failures.is_empty() {
        println!("1 passed, 0 failed");
        ExitCode::SUCCESS
    } else {
        println!("0 passed, 1 failed");
        ExitCode::FAILURE
    }
}
