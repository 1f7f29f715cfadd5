#!/usr/bin/env bash
# Burda et al. (2016)'s d = 50 protocol, start to end, on a machine with a GPU (or, slowly, on
# its CPU with BACKEND=cpu): the VAE and the K = 50 IWAE on dynamically binarised MNIST, all
# 60,000 training images, two tanh layers of 200 units around a 50-dimensional latent space,
# batches of 20, Adam (epsilon 1e-4) on the staged schedule (3,280 epochs), Glorot's
# initialisation and the decoder's output bias at the data's mean; then each run's test NLL
# with K = 5,000 on all 10,000 test images.
#
# Every epoch is saved, and the script resumes a run where it stopped: run it again after an
# interruption (the epoch under way when it stopped is trained again, from the same state). Usage: scripts/long-run.sh [OUT] (default reference-runs), EPOCHS=N to stop
# early, RUNS="vae iwae" to choose.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-reference-runs}
backend=${BACKEND:-gpu}
epochs=${EPOCHS:-3280}
runs=${RUNS:-vae iwae}
bin=${BIN:-target/release/latent-atlas}
[ -x "$bin" ] || cargo build --release --locked

source scripts/burda-protocol.sh

# The epochs of the published learning curve (README's d = 50 table): the run stops at each,
# keeps that epoch's weights in $dir/at/epoch-N (a run folder `eval --run` reads), and goes on
# from exactly where it stopped.
marks=(46 74 160 364 500 1093 2000 3280)

for run in $runs; do
  case $run in
    vae) extra=(--iw-samples 1) ;;
    iwae) extra=(--iw-samples 50) ;;
    *) echo "long-run: unknown run $run (vae or iwae)" >&2; exit 1 ;;
  esac
  dir="$out/d50-$run"
  start=$SECONDS
  for mark in "${marks[@]}" "$epochs"; do
    [ "$mark" -le "$epochs" ] || continue
    if [ -f "$dir/config.json" ]; then
      done_epochs=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["epoch"])' "$dir/config.json")
      [ "$done_epochs" -lt "$mark" ] || continue
      echo "long-run: $run from epoch $done_epochs to $mark" >&2
      "$bin" train --resume "$dir" --epochs "$mark" --backend "$backend" --score-samples 0
    else
      echo "long-run: $run to epoch $mark" >&2
      "$bin" train "${burda_protocol[@]}" "${extra[@]}" --epochs "$mark" --backend "$backend" --out "$dir"
    fi
    keep="$dir/at/epoch-$mark"
    mkdir -p "$keep"
    # The weights file the description names (saves alternate between two).
    weights=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("weights") or "model.bpk")' "$dir/config.json")
    cp "$dir/config.json" "$dir/$weights" "$keep/"
  done
  echo "long-run: $run trained in $((SECONDS - start)) s" >&2
  start=$SECONDS
  "$bin" eval --run "$dir" --nll-samples 5000 --nll-images 10000 --backend "$backend" |
    tee "$dir/eval-k5000.txt"
  echo "long-run: $run evaluated in $((SECONDS - start)) s" >&2
done
