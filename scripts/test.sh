#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine as root: installs what it needs, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Issue 19's measures: no function over 80 lines outside tests, no import circle inside routerd.
python3 scripts/architecture.py
# The virtual home network's tests run the routerd and rtrctl binaries, which `cargo test` alone does not build.
cargo build --workspace --bins
cargo test --workspace "$@"
