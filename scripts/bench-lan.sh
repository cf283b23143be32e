#!/usr/bin/env bash
# Benchmarks routerd's LAN services against what a user would otherwise run, in one run on this machine (root,
# Debian 12): DHCPv4 exchanges/s (perfdhcp) against routerd, kea-dhcp4 and dnsmasq; cached DNS queries/s
# (dnsperf) against routerd, unbound and dnsmasq as forwarders; memory of each. Prints the ratios. Not a test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
missing=()
for package in dnsperf kea-admin kea-dhcp4-server; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
echo "building routerd, rtrctl and bench in release mode (a few minutes the first time)…"
cargo build --quiet --release --workspace --bins
ROUTERD_LAB_BIN_DIR="$PWD/target/release" exec target/release/bench lan "$@"
