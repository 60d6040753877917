#!/usr/bin/env bash
# Every stage's metrics for one seed, as JSON lines without wall times: run before and after a
# change that must not change behaviour, and compare the two files (`diff`, or the numbers with
# scripts/compare-metrics.mjs). Micro preset, short stages: about a minute on two cores.
#   scripts/metrics-fingerprint.sh OUT.jsonl [extra rlhf flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/metrics-fingerprint.sh OUT.jsonl [flags]}; shift
cargo build --release --quiet --bin rlhf
rlhf=target/release/rlhf
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
common=(--preset micro --seed 7 --every 1 --set sft.steps=40 --set reward.simulated_labels=160 --set reward.epochs=1
        --set ppo.iterations=3 --set ppo.batch_size=16 --set ppo.ent_coef=0.01 --set ppo.early_stop_kl=0.5
        --set grpo.iterations=3 --set grpo.prompts=4 --set grpo.group_size=4 --set dpo.epochs=1 "$@")
strip() { node -e '
  const lines = require("fs").readFileSync(0, "utf8").split("\n").filter(Boolean);
  for (const l of lines) { const o = JSON.parse(l); delete o.seconds; delete o.seconds_per_iteration; console.log(JSON.stringify(o)); }'; }
"$rlhf" sft "${common[@]}" --out "$tmp/sft.rlhf" 2>/dev/null | strip > "$out"
"$rlhf" reward "${common[@]}" --sft "$tmp/sft.rlhf" --labels-out "$tmp/labels.jsonl" --out "$tmp/reward.rlhf" 2>/dev/null | strip >> "$out"
"$rlhf" ppo "${common[@]}" --sft "$tmp/sft.rlhf" --reward "$tmp/reward.rlhf" 2>/dev/null | strip >> "$out"
"$rlhf" grpo "${common[@]}" --sft "$tmp/sft.rlhf" --reward "$tmp/reward.rlhf" 2>/dev/null | strip >> "$out"
"$rlhf" grpo "${common[@]}" --set grpo.estimator=rloo --set grpo.scale_rewards=false --set grpo.loss_type=dapo --sft "$tmp/sft.rlhf" --reward "$tmp/reward.rlhf" 2>/dev/null | strip >> "$out"
"$rlhf" dpo "${common[@]}" --sft "$tmp/sft.rlhf" --labels "$tmp/labels.jsonl" 2>/dev/null | strip >> "$out"
wc -l "$out" >&2
