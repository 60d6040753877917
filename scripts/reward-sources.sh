#!/usr/bin/env bash
# The numbers behind docs/reward-sources.md, natively on the CPU backend (tiny preset):
#  1. π_ref: 300 SFT steps from the shipped base; r_φ from 2,000 simulated labels (seed 1);
#  2. for seeds 1–3: PPO and GRPO against r_φ and against the gold utility (RLVR), each measured
#     at the end on 256 fresh prompts (gold, KL, wall time);
#  3. for seeds 1–3: "Show reward hacking" — PPO at β = 0 against the default custom reward,
#     measured every 5 iterations (proxy and gold against √KL).
# Prints JSON lines; summarize with `node scripts/reward-sources-table.mjs OUT_DIR`.
#   scripts/reward-sources.sh OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/reward-sources.sh OUT_DIR}; mkdir -p "$out"
cargo build --release --quiet --bin rlhf
rlhf=$PWD/target/release/rlhf
cd "$out"
[ -f sft.rlhf ] || "$rlhf" sft --base "$OLDPWD/www/public/models/base-tiny.rlhf" --out sft.rlhf --every 1000 > sft.jsonl 2>/dev/null
[ -f reward.rlhf ] || "$rlhf" reward --sft sft.rlhf --out reward.rlhf --every 1000 > reward.jsonl 2>/dev/null
for seed in 1 2 3; do
  for stage in ppo grpo; do
    "$rlhf" "$stage" --sft sft.rlhf --reward reward.rlhf --seed $seed --every 1000 > "$stage-rm-$seed.jsonl" 2>/dev/null
    "$rlhf" "$stage" --sft sft.rlhf --seed $seed --set "$stage.reward=gold" --every 1000 > "$stage-gold-$seed.jsonl" 2>/dev/null
  done
  "$rlhf" ppo --sft sft.rlhf --seed $seed --set ppo.reward=custom --set ppo.kl_coef=0 --eval-every 5 --every 1000 > "hacking-$seed.jsonl" 2>/dev/null
  echo "seed $seed done" >&2
done
