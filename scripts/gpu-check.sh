#!/usr/bin/env bash
# The GPU path on real hardware, in one command: builds the release binary and the test binary on
# this machine (the binary is too big to copy about; 16 cores build it in minutes), brings up
# Vulkan where the GPU driver is installed but the Vulkan loader is not, prints `bench` on the
# CPU (flex) and the GPU (wgpu) side by side (MLP, conv, GAN iteration, decode latency), and runs
# the `gpu_` tests. Written to finish in under 10 minutes on a fresh machine with an NVIDIA GPU.
#
#   scripts/gpu-check.sh            # everything; the log is also written to gpu-check.log
#   BENCH_SECONDS=3 scripts/gpu-check.sh
#
# On a machine without a GPU, `bench` stops with "no GPU available" and the reason (set
# LATENT_ATLAS_SOFTWARE_GPU=1 to go on with a software adapter, for testing this script).
set -euo pipefail
cd "$(dirname "$0")/.."
exec > >(tee gpu-check.log) 2>&1
start=$SECONDS
say() { echo "== $* ($((SECONDS - start)) s)"; }

say "machine"
lscpu 2>/dev/null | grep -E 'Model name|^CPU\(s\)' || true
command -v nvidia-smi >/dev/null 2>&1 &&
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

# A Rust toolchain, from rustup when there is none.
if ! command -v cargo >/dev/null 2>&1; then
  if [ -f "$HOME/.cargo/env" ]; then
    . "$HOME/.cargo/env"
  else
    say "installing Rust (rustup, minimal profile)"
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    . "$HOME/.cargo/env"
  fi
fi
cc --version >/dev/null 2>&1 || echo "warning: no C compiler (cc); a few crates need one: apt install build-essential" >&2

# Vulkan: wgpu loads libvulkan.so.1 (the loader), which finds the driver through its ICD file.
# NVIDIA's container images ship the driver and its ICD file but often not the loader.
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; then
  say "no Vulkan loader: fetching libvulkan1"
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1 &&
    apt-get install -y -qq --no-install-recommends libvulkan1 >/dev/null 2>&1; then
    ldconfig
  elif command -v apt-get >/dev/null 2>&1; then
    # Without root: unpack the package beside the checkout and point the linker there.
    mkdir -p .gpu-check/deb .gpu-check/root
    (cd .gpu-check/deb && apt-get download libvulkan1 >/dev/null)
    for f in .gpu-check/deb/*.deb; do dpkg -x "$f" .gpu-check/root; done
    lib=$(dirname "$(find "$PWD/.gpu-check/root" -name 'libvulkan.so.1' | head -1)")
    export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  else
    echo "warning: no Vulkan loader and no apt-get to fetch one; wgpu may find no adapter" >&2
  fi
fi
if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ]; then
  for icd in /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json \
    /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; do
    if [ -f "$icd" ]; then
      case "$icd" in
        /usr/local/*) export VK_DRIVER_FILES="$icd" ;; # outside the loader's search path
      esac
      echo "Vulkan driver: $icd"
      break
    fi
  done
fi

say "building (release)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --locked
cargo test --release --locked --test it --no-run
bin="$CARGO_TARGET_DIR/release/latent-atlas"
ls -l "$bin"

secs="${BENCH_SECONDS:-5}"
say "bench: flex and wgpu, interleaved ($secs s rounds); it stops here when wgpu finds no GPU"
"$bin" bench --backends flex,gpu --no-load --rounds 2 --seconds "$secs" \
  --conv-seconds "$secs" --gan-seconds "$secs"

say "the gpu_ tests"
set +e
cargo test --release --locked --test it gpu_ -- --nocapture 2>&1 |
  grep -E '^(test |gpu tests on|test result)|panicked|FAILED'
status=${PIPESTATUS[0]}
set -e

say "done"
exit "$status"
