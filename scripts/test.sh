#!/usr/bin/env bash
# Command 2: set up whatever is missing, then run every test — native, in real browsers
# (Chromium with WebGPU, Firefox ESR on the CPU backend), and end to end through the page.
# Prints each step's wall time; fails on the first failing step.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
started=$(date +%s)
step() {
  local name=$1; shift
  printf '\n\033[1m[test] %s\033[0m\n' "$name" >&2
  local t0; t0=$(date +%s)
  "$@"
  printf '\033[1m[test] %s: %ss\033[0m\n' "$name" "$(( $(date +%s) - t0 ))" >&2
}

step "set-up" scripts/setup.sh
# The layers of src/ (app → rlhf → engine → foundations) and no import cycle in src/ or www/.
step "import direction (scripts/check-imports.mjs)" node scripts/check-imports.mjs
step "native tests (cargo test --release)" cargo test --release
# The Hugging Face export checked with the real clients (transformers, tokenizers, datasets), from a
# venv cached outside the checkout: a cold install takes minutes, a warm run under a minute.
step "Hugging Face export with transformers (scripts/check-hf.sh)" scripts/check-hf.sh
# WebGPU in headless Chromium is SwiftShader (a GPU emulated on the CPU): the browser tests
# prove correctness on a few steps there and compare with the CPU backend.
export WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-1200}
step "browser tests in Chromium (wasm-pack test --headless --chrome)" \
  env CHROMEDRIVER=/usr/bin/chromedriver wasm-pack test --headless --chrome --release --test web --features webgpu
step "browser tests in Firefox ESR (wasm-pack test --headless --firefox)" \
  env GECKODRIVER="$(command -v geckodriver)" wasm-pack test --headless --firefox --release --test web --features webgpu
step "build the page" scripts/build.sh
step "end-to-end tests (Playwright, Chromium)" node --test --test-concurrency=1 tests/e2e/
printf '\n\033[1m[test] all passed in %ss\033[0m\n' "$(( $(date +%s) - started ))" >&2
