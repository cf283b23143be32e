#!/usr/bin/env bash
# Measures what a whole system update costs a LAN device on the appliance (root, Debian 12): the lab boots the
# appliance's image in qemu, and a LAN device pings a host behind it and asks its DNS and DHCP every 10–50 ms
# while `rtrctl update --image` uploads a bundle, writes the other slot, switches by kexec and confirms; prints
# forwarded packets lost and the longest DNS and DHCP gaps (router7: about 13 s on an apu2). qemu runs under
# software emulation here, so every figure is far above what an apu2 gives. Release build. Not a test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "building in release mode (a few minutes the first time)…"
cargo build --quiet --release --workspace --bins
ROUTERD_LAB_BIN_DIR="$PWD/target/release" exec target/release/bench system-update "$@"
