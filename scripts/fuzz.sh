#!/usr/bin/env bash
# Fuzzes every input reader for SECONDS each (default 60) with cargo-fuzz on the nightly
# toolchain, and prints each target's executions and findings. Crashes land in
# fuzz/artifacts/TARGET/; each one found becomes a regression test in the normal suite.
#   cargo install cargo-fuzz   (once)
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(idx image config checkpoint metrics_csv evaluator_cache numpy)
fi
mkdir -p fuzz/corpus
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  log="fuzz/$t.log"
  # -s none: no sanitizer (the code is safe Rust; libFuzzer still catches panics, aborts,
  # timeouts and runaway memory).
  if cargo +nightly fuzz run -s none "$t" "fuzz/corpus/$t" -- \
      -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=10 >"$log" 2>&1; then
    status="no crash"
  else
    status="CRASH (see $log and fuzz/artifacts/$t/)"
  fi
  runs=$(grep -o 'Done [0-9]* runs' "$log" | tail -1 | grep -o '[0-9]*' || echo "?")
  echo "$t: $runs executions in ${seconds}s, $status"
done
