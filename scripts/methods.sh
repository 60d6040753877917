#!/usr/bin/env bash
# PPO, GRPO, RLOO, REINFORCE and GSPO from the same π_ref and r_φ (scripts/reward-sources.sh
# makes them in OUT_DIR), seeds 1–3, natively on the CPU backend; each policy measured on 256 fresh
# prompts. Summarize with `node scripts/methods-table.mjs OUT_DIR`.
#   scripts/methods.sh OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/methods.sh OUT_DIR}
[ -f "$out/sft.rlhf" ] && [ -f "$out/reward.rlhf" ] || { echo "run scripts/reward-sources.sh $out first" >&2; exit 1; }
cargo build --release --quiet --bin rlhf
rlhf=$PWD/target/release/rlhf
for seed in 1 2 3; do
  "$rlhf" ppo --sft "$out/sft.rlhf" --reward "$out/reward.rlhf" --seed $seed --every 1000 > "$out/method-ppo-$seed.jsonl" 2>/dev/null
  for method in grpo rloo reinforce gspo; do
    "$rlhf" grpo --method $method --sft "$out/sft.rlhf" --reward "$out/reward.rlhf" --seed $seed --every 1000 > "$out/method-$method-$seed.jsonl" 2>/dev/null
  done
  echo "seed $seed done" >&2
done
