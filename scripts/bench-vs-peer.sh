#!/usr/bin/env bash
# Interleaves the project's training benchmark with the PyTorch peer's, in one window, and
# prints each pair's ratio and the median. Needs a release build and `pip install torch numpy`.
#
#   scripts/bench-vs-peer.sh [pairs] [extra bench options...]
#
# Example: scripts/bench-vs-peer.sh 3 --no-load
set -euo pipefail
cd "$(dirname "$0")/.."
pairs="${1:-3}"
shift || true
bin="${LATENT_ATLAS_BIN:-${CARGO_TARGET_DIR:-target}/release/latent-atlas}"
peer="${PEER:-../shared/reference/torch_vae.py}"
[ -x "$bin" ] || { echo "no release build at $bin (cargo build --release; set CARGO_TARGET_DIR or LATENT_ATLAS_BIN)" >&2; exit 1; }
[ -f "$peer" ] || { echo "no peer script at $peer (set PEER)" >&2; exit 1; }
lscpu | grep 'Model name' || true
ratios=()
for i in $(seq 1 "$pairs"); do
  torch=$(python3 "$peer" speed 10 | awk '/^train_samples_per_sec/ { print $2 }')
  ours=$("$bin" bench --backends flex --rounds 2 --seconds 5 --gan-seconds 0 --peer-samples-per-sec "$torch" "$@" \
    | tee /dev/stderr | awk '/^speedup_vs_peer/ { print $2 }')
  echo "pair $i: PyTorch $torch samples/s, speedup_vs_peer $ours"
  ratios+=("$ours")
done
printf '%s\n' "${ratios[@]}" | sort -g | awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; print "median speedup_vs_peer " m }'
