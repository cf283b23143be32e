#!/usr/bin/env bash
# Measures the gap a routerd update leaves (root, Debian 12): in the lab, a LAN device pings a host behind the
# router, asks the router's DNS and DHCP every 10–50 ms while `rtrctl update` replaces routerd with another
# build; prints forwarded packets lost and the longest DNS and DHCP gaps (goal: none lost, DNS under 1 s;
# router7: about 13 s). Release build. Not a test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "building in release mode (a few minutes the first time)…"
cargo build --quiet --release --workspace --bins
ROUTERD_LAB_BIN_DIR="$PWD/target/release" exec target/release/bench update "$@"
