#!/usr/bin/env bash
# Each of Burda et al.'s protocol options, taken away one at a time, at equal epochs: the d = 50
# VAE of scripts/long-run.sh trained EPOCHS (default 46) epochs with one option changed, and every
# run's test NLL (K = $K draws, default 500, on $IMAGES test images, default all 10,000) printed
# beside the full protocol's (docs/measured.md: "Burda's protocol, one option at a time"). The
# full protocol twice (seeds 0 and 1) gives the spread between seeds, against which each option's
# effect is read.
#
# Usage: scripts/ablations.sh [OUT] (default /tmp/latent-atlas-ablations); ONLY="relu no-bias" runs
# some; BIN, BACKEND (default cpu) as in long-run.sh. A run whose folder holds its evaluation is
# not trained again.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-/tmp/latent-atlas-ablations}
backend=${BACKEND:-cpu}
epochs=${EPOCHS:-46}
k=${K:-500}
images=${IMAGES:-10000}
bin=${BIN:-target/release/latent-atlas}
[ -x "$bin" ] || cargo build --release --locked

# The full protocol: the flags of scripts/long-run.sh's VAE.
source scripts/burda-protocol.sh
full=("${burda_protocol[@]}" --iw-samples 1)

# name | what changes (flags to drop, then flags to add)
variants=(
  "full|"
  "full-seed1||--seed 1"
  "relu|--activation tanh|--activation relu"
  "no-bias|--mean-output-bias|"
  "no-glorot|--glorot-init|"
  "adam-eps-1e-8|--adam-epsilon 1e-4|"
  "batch-128|--batch-size 20|--batch-size 128"
  "constant-lr|--lr-schedule burda|"
  "train-50k|--validation 0|--validation 10000"
)

mkdir -p "$out"
for v in "${variants[@]}"; do
  IFS='|' read -r name drop add <<<"$v"
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then continue; fi
  dir="$out/$name"
  if [ ! -f "$dir/eval.txt" ]; then
    # The full protocol's flags with this variant's pair of words taken out and its own added.
    args=" ${full[*]} "
    if [ -n "$drop" ]; then
      [[ "$args" == *" $drop "* ]] || { echo "ablations: $name drops '$drop', not in the protocol" >&2; exit 1; }
      args=${args/ $drop / }
    fi
    rm -rf "$dir"
    start=$SECONDS
    # shellcheck disable=SC2086 # the flags are words
    "$bin" train $args $add --epochs "$epochs" --backend "$backend" --out "$dir" > "$dir.log" 2>&1
    echo "$name: trained $epochs epochs in $((SECONDS - start)) s" >&2
    "$bin" eval --run "$dir" --nll-samples "$k" --nll-images "$images" --backend "$backend" > "$dir/eval.txt" 2>>"$dir.log"
  fi
  echo "$name: $(cat "$dir/eval.txt")" >&2
done
echo "ablations: in $out (each run's training log beside its folder)" >&2
