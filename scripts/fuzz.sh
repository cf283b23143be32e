#!/usr/bin/env bash
# Runs every fuzz target for RUNS executions (default a million), then minimises its corpus, which is committed
# (tests/fuzz_corpora.rs replays it on the stable toolchain). Needs the nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz`); CI needs neither. Usage: bash scripts/fuzz.sh [RUNS] [TARGET…]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
runs="${1:-1000000}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  echo "== $target: $runs runs"
  # -max_len keeps inputs the size of real packets and files; -timeout catches hangs.
  log="$(mktemp)"
  if ! cargo +nightly fuzz run -O "$target" "corpus/$target" -- -runs="$runs" -max_len=4096 -timeout=10 \
    -print_final_stats=1 >"$log" 2>&1; then
    tail -40 "$log"
    echo "$target: the fuzzer found a problem; the input is under fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb)" "$log" | sed 's/^/   /'
  rm -f "$log"
  cargo +nightly fuzz cmin -O "$target" "corpus/$target" >/dev/null 2>&1
  echo "   corpus: $(ls "corpus/$target" | wc -l) inputs"
done
