#!/usr/bin/env bash
# The Hugging Face export, checked with the real clients: the CLI trains a small π_ref, r_φ and a
# DPO policy, exports each as a Hugging Face folder and the labels as a TRL preference file, and
# tests/hf/check_hf.py loads them with transformers, tokenizers and datasets and compares with
# what the lab computes (`rlhf probe`); then a folder saved again from Python is loaded back by the
# CLI and compared once more.
#
# The clients are pinned and installed once into a venv cached outside the checkout
# ($RLHF_HF_VENV, default ~/.cache/rlhf-lab/hf-venv-<hash of the pins>): PyPI's torch wheel brings
# its CUDA libraries (~5.8 GB), so a cold install takes minutes and a warm run none.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
log() { printf '\033[1m[hf]\033[0m %s\n' "$*" >&2; }

PINS="torch==2.15.0 transformers==5.23.0 tokenizers==0.23.3 datasets==5.2.0 safetensors==0.8.0"
venv="${RLHF_HF_VENV:-$HOME/.cache/rlhf-lab/hf-venv-$(printf '%s' "$PINS" | sha256sum | cut -c1-12)}"
if ! "$venv/bin/python" -c "import torch, transformers, tokenizers, datasets" 2>/dev/null; then
  log "installing $PINS into $venv"
  t0=$(date +%s)
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check $PINS
  log "installed in $(( $(date +%s) - t0 )) s"
fi

cargo build --release --quiet --bin rlhf
rlhf=target/release/rlhf
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
quiet() { "$@" >/dev/null; }
log "training a small π_ref, r_φ and DPO policy with the CLI (tiny preset, from the shipped base model)"
quiet $rlhf sft --base www/public/models/base-tiny.rlhf --set sft.steps=80 --out "$work/sft.rlhf" 2>/dev/null
quiet $rlhf reward --sft "$work/sft.rlhf" --set reward.simulated_labels=400 --set reward.epochs=1 \
  --labels-out "$work/labels.jsonl" --out "$work/reward.rlhf" 2>/dev/null
quiet $rlhf dpo --sft "$work/sft.rlhf" --labels "$work/labels.jsonl" --set dpo.epochs=1 --out "$work/dpo.rlhf" 2>/dev/null
for role in sft reward dpo; do
  $rlhf export --from "$work/$role.rlhf" --hf "$work/hf-$role"
  $rlhf probe --from "$work/$role.rlhf" --out "$work/probe-$role.json"
done
$rlhf export --labels "$work/labels.jsonl" --trl "$work/prefs.jsonl"
"$venv/bin/python" tests/hf/check_hf.py "$work"
log "loading the folder saved from Python back into the lab"
$rlhf import --hf "$work/py-sft" --as sft --out "$work/back.rlhf"
$rlhf probe --from "$work/back.rlhf" --out "$work/probe-back.json"
"$venv/bin/python" tests/hf/check_hf.py "$work" --back
