#!/usr/bin/env bash
# Builds Latent Atlas for a browser tab into web/dist/: index.html, the JavaScript glue and the
# WebAssembly module. Serve that folder from any static server, for example
#   python3 -m http.server -d web/dist 8000
# and open http://localhost:8000.
#
# Needs, once: `rustup target add wasm32-unknown-unknown` and
# `cargo install wasm-bindgen-cli --version <the version in Cargo.lock> --locked`
# (this script names the version when it is missing).
set -euo pipefail
cd "$(dirname "$0")/.."

out=web/dist
bindgen_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  echo "build-web: the wasm32 target is missing; run: rustup target add wasm32-unknown-unknown" >&2
  exit 1
fi
if ! command -v wasm-bindgen >/dev/null 2>&1 ||
   [ "$(wasm-bindgen --version | awk '{print $2}')" != "$bindgen_version" ]; then
  echo "build-web: wasm-bindgen $bindgen_version is needed (the version in Cargo.lock); run:" >&2
  echo "  cargo install wasm-bindgen-cli --version $bindgen_version --locked" >&2
  exit 1
fi

# The page trains on WebGPU (burn's wgpu backend) where the browser has a hardware adapter,
# and on its CPU otherwise (docs/web.md, "Training on WebGPU"). FEATURES= (empty) builds the
# CPU page alone, a few megabytes smaller.
features=${FEATURES-webgpu}
echo "build-web: compiling for wasm32 (release; features: ${features:-none})" >&2
cargo build --release --locked --target wasm32-unknown-unknown -p latent-atlas-web \
  ${features:+--features "$features"}

staging=$(mktemp -d)
chmod 755 "$staging"
trap 'rm -rf "$staging"' EXIT
# The function names (about 9 MB) are left out: the page does not need them, and the goal for
# the whole page is 25 MB gzipped. (Debian's wasm-opt 108 was tried too: its -O2 output of
# the WebGPU build never started in Chromium 156.)
# NAMES=1 keeps them, for a profile of the page (Chromium's profiler then names each function).
names=--remove-name-section
[ "${NAMES-}" = 1 ] && names=
wasm-bindgen --target web --no-typescript $names --out-dir "$staging" \
  "${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/release/latent_atlas_web.wasm"
cp web/static/index.html "$staging/"

# The new page replaces the old one whole.
rm -rf "$out.new"
mv "$staging" "$out.new"
trap - EXIT
rm -rf "$out"
mv "$out.new" "$out"

wasm_bytes=$(stat -c %s "$out/latent_atlas_web_bg.wasm")
gzip_bytes=$(cat "$out"/* | gzip -9 | wc -c)
echo "build-web: wrote $out ($wasm_bytes bytes of WebAssembly; $gzip_bytes bytes in all, gzipped)" >&2
