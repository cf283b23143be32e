#!/usr/bin/env bash
# The demo: builds the virtual home network (an ISP running dnsmasq, kea, radvd, unbound and an HTTP host; the
# router running routerd; LAN devices), tours what routerd can do so far, prints what it saw, and removes
# everything again, also on Ctrl-C. Exits non-zero if a step failed. Arguments go to `lab demo` (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "building routerd, rtrctl and lab (the first build takes a few minutes)…"
cargo build --quiet --workspace --bins
exec target/debug/lab demo "$@"
