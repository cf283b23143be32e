//! Replays every fuzz target's committed corpus (`fuzz/corpus/TARGET/`) on the stable toolchain: what the
//! fuzzers found and kept must never panic. `cargo +nightly fuzz run TARGET` (in `fuzz/`) grows them.

use std::path::Path;

#[test]
fn every_corpus_input_of_every_target_runs_without_a_panic() {
    let corpora = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut summary = Vec::new();
    for (target, run) in routerd::fuzzing::TARGETS {
        let dir = corpora.join(target);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e} (every target has a committed corpus)", dir.display()))
            .flatten()
            .map(|entry| entry.path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "{target}: the corpus is empty");
        for input in &inputs {
            let data = std::fs::read(input).unwrap_or_else(|e| panic!("{}: {e}", input.display()));
            if std::panic::catch_unwind(|| run(&data)).is_err() {
                panic!("{target} panicked on {}", input.display());
            }
        }
        summary.push(format!("{target}: {}", inputs.len()));
    }
    routerd::fuzzing::cleanup();
    println!("replayed {}", summary.join(", "));
}
