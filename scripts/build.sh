#!/usr/bin/env bash
# Builds the page: the wasm core (release, SIMD) in its two builds, their JS bindings, and the
# Vite bundle in dist/.
# cargo only rebuilds what changed; a cold build of burn for wasm takes ~10 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
log() { printf '\033[1m[build]\033[0m %s\n' "$*" >&2; }

# Two builds of the core from the same source: www/pkg/ with burn's WebGPU backend (`webgpu`),
# www/pkg-cpu/ with the CPU backend alone (no cubecl, wgpu or naga: ~1/4 of the size), which a
# page that trains on the CPU loads (www/core.js). Each has its own target dir, so neither
# rebuild overwrites the other's artifacts.
core() { # feature-args target-dir out-dir
  local features=$1 target_dir=$2 out=$3
  log "cargo build --release --target wasm32-unknown-unknown --lib $features (→ $out)"
  # shellcheck disable=SC2086
  cargo build --release --target wasm32-unknown-unknown --lib $features --target-dir "$target_dir"
  local wasm=$target_dir/wasm32-unknown-unknown/release/rlhf_lab.wasm
  if [ ! -f "$out/rlhf_lab_bg.wasm" ] || [ "$wasm" -nt "$out/rlhf_lab_bg.wasm" ]; then
    log "wasm-bindgen --target web --out-dir $out"
    wasm-bindgen --target web --out-dir "$out" "$wasm"
  fi
  if [ "${WASM_OPT:-0}" = "1" ]; then
    # Optional: smaller, but minutes on 2 cores; off by default.
    log "wasm-opt -O2 $out"
    node_modules/.bin/wasm-opt -O2 --all-features "$out/rlhf_lab_bg.wasm" -o "$out/rlhf_lab_bg.wasm"
  fi
}
core "--features webgpu" target www/pkg
core "" target/cpu-core www/pkg-cpu
# The relaxed-SIMD matrix product, a module of its own (src/engine/cpu/matmul_kernel.rs says why). It runs
# on the core's memory, so it must own no memory, data or stack: checked on its text.
log "cargo build kernels/fma (relaxed SIMD)"
RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd -C link-arg=--import-memory -C link-arg=-zstack-size=0" \
  cargo build --release --target wasm32-unknown-unknown --manifest-path kernels/fma/Cargo.toml --target-dir target/fma-kernel
fma=target/fma-kernel/wasm32-unknown-unknown/release/fma_kernel.wasm
text=$(node_modules/.bin/wasm-dis "$fma")
if ! grep -q '(import "env" "memory"' <<<"$text" || grep -qE '^ \((data|memory) ' <<<"$text" || grep -q 'global.set' <<<"$text" || ! grep -q 'f32x4.relaxed_madd' <<<"$text"; then
  echo "fma_kernel.wasm must import its memory, own no data or stack, and use relaxed_madd" >&2
  exit 1
fi
cp "$fma" www/pkg/fma_kernel.wasm
log "vite build"
npx --no-install vite build --logLevel warn
for out in www/pkg www/pkg-cpu; do
  raw=$(stat -c %s $out/rlhf_lab_bg.wasm)
  gz=$(gzip -9 -c $out/rlhf_lab_bg.wasm | wc -c)
  log "$out: $((raw / 1024)) KiB raw, $((gz / 1024)) KiB gzipped"
done
