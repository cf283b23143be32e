#!/usr/bin/env bash
# Benchmarks routerd's LAN services against what a user would otherwise run, in one run on this machine (root,
# Debian 12): DHCPv4 sustained exchanges/s for 100,000 clients on a /15 (perfdhcp as a relay) against routerd,
# kea-dhcp4 and dnsmasq; DNS answers/s cached and uncached (dnsperf) against routerd, unbound and dnsmasq; CPU per
# request, memory, start-up. Prints the ratios; not a test. Arguments pick parts: dhcp dns memory startup (and
# latency: DHCP at 100 exchanges/s only, three trials each for routerd and kea; full: routerd holding 100,000
# leases against an empty one).
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
