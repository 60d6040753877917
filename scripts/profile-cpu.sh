#!/usr/bin/env bash
# Profiles the CPU backend as the page runs it: builds the wasm core with its function names
# (a target directory of its own, target/wasm-names: ~15 minutes from cold, since the release
# build's `strip` is part of every crate's fingerprint) and prints where SFT training steps of
# the tiny preset spend their time (scripts/profile-cpu.mjs, in Node's V8).
#
#   scripts/profile-cpu.sh [steps] [top]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
CARGO_PROFILE_RELEASE_STRIP=false cargo build --release --target wasm32-unknown-unknown --lib --target-dir target/wasm-names
wasm-bindgen --target web --out-dir target/wasm-names/pkg target/wasm-names/wasm32-unknown-unknown/release/rlhf_lab.wasm
node --experimental-wasm-relaxed-simd scripts/profile-cpu.mjs "$PWD/target/wasm-names/pkg" "${1:-100}" "${2:-30}"
