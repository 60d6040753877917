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
# ROUNDS=n repeats the CPU measurements (native, the page's CPU backend, PyTorch) n times, each
# row tagged with its round, so that every ratio to PyTorch is taken within a round (this
# machine's speed drifts by ~2x over minutes). WebGPU is measured in the first round only.
# WEBGPU_PRESETS= (empty) skips WebGPU. CPU_MATMUL=fastest,simd128,flex also runs the page's CPU
# backend with the core's own matrix product and with flex's (the gemm crate), for comparison.
rounds=${ROUNDS:-1}
tag() { sed "s/^{/{\"round\":$1,/"; }
if [ ! -x .venv-bench/bin/python ]; then
  echo "[bench] installing PyTorch (CPU reference) into .venv-bench" >&2
  python3 -m venv .venv-bench
  .venv-bench/bin/pip install --quiet "torch==${TORCH_VERSION:-2.15.0}"
fi
for round in $(seq 1 "$rounds"); do
  echo "[bench] round $round of $rounds: native" >&2
  cargo run --release --quiet --bin rlhf -- bench --presets "${PRESETS:-micro,tiny,small}" | tag "$round" >>"$out"
  echo "[bench] round $round of $rounds: browser (headless Chromium)" >&2
  webgpu=$([ "$round" = 1 ] && echo "${WEBGPU_PRESETS-micro,tiny}" || true)
  node scripts/bench.mjs --cpu-presets "${PRESETS:-micro,tiny,small}" --webgpu-presets "$webgpu" --cpu-matmul "${CPU_MATMUL:-fastest}" | tag "$round" >>"$out"
  echo "[bench] round $round of $rounds: PyTorch CPU reference" >&2
  .venv-bench/bin/python bench/torch_reference.py --presets "${PRESETS:-micro,tiny,small}" | tag "$round" >>"$out"
  # PyTorch on one thread too: what its second thread buys on this machine, beside what the
  # page's second worker buys (the split rows).
  .venv-bench/bin/python bench/torch_reference.py --threads 1 --presets "${PRESETS:-micro,tiny,small}" | tag "$round" >>"$out"
done
node scripts/bench-table.mjs "$out" bench-results.json
