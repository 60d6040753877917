#!/usr/bin/env bash
# The benchmark (not a test): ms per training step, per generated token and per PPO iteration,
# dispatches, submissions and readbacks per step, for each preset on every backend this machine
# reaches — native CPU, the CPU backend in headless Chromium, WebGPU in headless Chromium — beside
# a PyTorch CPU reference of the same shapes run in the same invocation. Prints a table and
# writes bench-results.json. PyTorch is installed here (in .venv-bench) and nowhere else.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/setup.sh
scripts/build.sh
out=$(mktemp)
echo "[bench] native" >&2
cargo run --release --quiet --bin rlhf -- bench --presets "${PRESETS:-micro,tiny,small}" >>"$out"
echo "[bench] browser (headless Chromium)" >&2
node scripts/bench.mjs --cpu-presets "${PRESETS:-micro,tiny,small}" --webgpu-presets "${WEBGPU_PRESETS:-micro,tiny}" >>"$out"
if [ ! -x .venv-bench/bin/python ]; then
  echo "[bench] installing PyTorch (CPU reference) into .venv-bench" >&2
  python3 -m venv .venv-bench
  .venv-bench/bin/pip install --quiet "torch==${TORCH_VERSION:-2.15.0}"
fi
echo "[bench] PyTorch CPU reference" >&2
.venv-bench/bin/python bench/torch_reference.py --presets "${PRESETS:-micro,tiny,small}" >>"$out"
node scripts/bench-table.mjs "$out" bench-results.json
