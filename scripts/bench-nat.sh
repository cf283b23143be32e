#!/usr/bin/env bash
# Benchmarks forwarding through the router namespace (root, Debian 12): iperf3 TCP throughput from a LAN device
# to the internet host with routerd's ruleset and with router7's (masquerade, accept everything), in one run,
# with the ratio. Reports whether the kernel has flowtables. Not a test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
dpkg -s iperf3 >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends iperf3
echo "building in release mode (a few minutes the first time)…"
cargo build --quiet --release --workspace --bins
ROUTERD_LAB_BIN_DIR="$PWD/target/release" exec target/release/bench nat "$@"
