"""The lab's Hugging Face export, checked with the real clients (transformers, tokenizers, datasets).

    python tests/hf/check_hf.py WORK

WORK holds what scripts/check-hf.sh made with the lab's CLI: for each role R in `sft`, `dpo`
(language models) and `reward` (a scoring model) a folder `hf-R/` (`rlhf export --hf`) and
`probe-R.json` (`rlhf probe`: the lab's own logits, scores and greedy tokens), and `prefs.jsonl`
(`rlhf export --trl`) with `labels.jsonl`. It also saves the π_ref folder again from Python
(`py-sft/`, a model edited in Python) for the CLI to load back.

Every check prints one line; any failure raises and exits non-zero. The last line is
"N passed, 0 failed".
"""

import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
from datasets import load_dataset  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    GenerationConfig,
)

LOGIT_TOLERANCE = 1e-4
passed = 0


def check(ok, what):
    global passed
    if not ok:
        print(f"FAIL {what}", flush=True)
        print(f"0 passed, 1 failed")
        sys.exit(1)
    passed += 1
    print(f"ok   {what}", flush=True)


def load_probe(work, role):
    with open(os.path.join(work, f"probe-{role}.json")) as f:
        return json.load(f)


def check_tokenizer(folder, probe):
    tok = AutoTokenizer.from_pretrained(folder)
    vocab = tok.get_vocab()
    words = sorted(vocab, key=vocab.get)
    round_trips = sum(tok.decode(tok.encode(w, add_special_tokens=False)) == w for w in words)
    check(round_trips == len(words), f"tokenizer: every one of the {len(words)} vocabulary words round-trips ({round_trips})")
    same = [tok(s["text"])["input_ids"] == s["ids"] for s in probe["sequences"]]
    check(all(same), f"tokenizer: the lab's token ids of {len(same)} texts, <bos> put in front")
    decoded = [tok.decode(s["ids"][1:], skip_special_tokens=False) for s in probe["sequences"]]
    check(decoded == [s["text"] for s in probe["sequences"]], "tokenizer: decoding gives the lab's text")
    specials = (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.unk_token_id)
    check(specials == (1, 2, 0, 3), f"tokenizer: <bos>, <eos>, <pad>, <unk> are ids {specials}")
    return tok


def check_language_model(folder, probe, role):
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    suppressed = set(probe["suppressed"])
    worst = 0.0
    compared = 0
    with torch.no_grad():
        for s in probe["sequences"]:
            ids = torch.tensor([s["ids"]])
            logits = model(ids).logits[0]
            lab = torch.tensor(s["logits"])
            keep = [t for t in range(lab.shape[1]) if t not in suppressed]
            worst = max(worst, (logits[:, keep] - lab[:, keep]).abs().max().item())
            check_masked = bool((lab[:, sorted(suppressed)] < -1e8).all())
            if not check_masked:
                check(False, f"{role}: the lab pushes the suppressed tokens to -1e9")
            compared += 1
    check(compared >= 20 and worst <= LOGIT_TOLERANCE, f"{role}: logits of {compared} sequences equal the lab's within {LOGIT_TOLERANCE} (largest difference {worst:.2e}; <pad>, <bos>, <unk> suppressed)")
    generation = GenerationConfig.from_pretrained(folder)
    check(list(generation.suppress_tokens) == sorted(suppressed), f"{role}: generation_config suppresses {generation.suppress_tokens}")
    generation.do_sample = False  # greedy: the lab's temperature 0
    same = 0
    with torch.no_grad():
        for g in probe["greedy"]:
            prompt = torch.tensor([g["prompt"]])
            out = model.generate(prompt, attention_mask=torch.ones_like(prompt), generation_config=generation)
            completion = out[0, prompt.shape[1]:].tolist()
            if 2 in completion:
                completion = completion[: completion.index(2) + 1]
            same += completion == g["completion"]
            if completion != g["completion"]:
                print(f"     greedy differs: lab {g['completion']} transformers {completion}")
    check(same == len(probe["greedy"]), f"{role}: greedy generation gives the lab's tokens for {same} of {len(probe['greedy'])} prompts")
    return model


def check_reward_model(folder, probe):
    model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32).eval()
    bias = model.config.score_bias
    ids = torch.tensor([s["ids"] for s in probe["sequences"]])
    with torch.no_grad():
        scores = model(ids, attention_mask=(ids != 0).long()).logits[:, 0] + bias
    lab = torch.tensor([s["score"] for s in probe["sequences"]])
    worst = (scores - lab).abs().max().item()
    check(len(lab) >= 20 and worst <= LOGIT_TOLERANCE, f"reward: scores of {len(lab)} right-padded sequences = logit + score_bias ({bias:+.4f}) equal the lab's within {LOGIT_TOLERANCE} (largest difference {worst:.2e})")
    spread = lab.std().item()
    check(spread > 1e-3, f"reward: the scores differ between sequences (std {spread:.3f}): the check compares a trained head")


def check_preferences(work):
    data = load_dataset("json", data_files=os.path.join(work, "prefs.jsonl"), split="train")
    for column in ("prompt", "chosen", "rejected"):
        check(column in data.column_names and data.features[column].dtype == "string", f"labels: datasets reads the column {column!r} as text")
    with open(os.path.join(work, "labels.jsonl")) as f:
        labels = [json.loads(line) for line in f if line.strip()]
    strict = [l for l in labels if l["preference"] != "tie"]
    check(len(data) == len(strict), f"labels: {len(data)} rows for {len(strict)} strict preferences ({len(labels) - len(strict)} ties left out)")
    first = strict[0]
    chosen, rejected = (first["first"], first["second"]) if first["preference"] == "first" else (first["second"], first["first"])
    strip = lambda t: t.removesuffix("<eos>").strip()
    check((data[0]["prompt"], data[0]["chosen"], data[0]["rejected"]) == (first["prompt"], strip(chosen), strip(rejected)), "labels: the first row is the first strict label, chosen and rejected in place, <eos> left to the trainer")


def save_from_python(work):
    """A learner's round trip: load π_ref, change it in Python, save it as a new folder."""
    folder = os.path.join(work, "hf-sft")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        model.transformer.ln_f.bias.add_(0.01)
    out = os.path.join(work, "py-sft")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    check(os.path.exists(os.path.join(out, "model.safetensors")), "python: π_ref edited (ln_f.bias + 0.01) and saved again to py-sft/ for the lab to load back")


def check_loaded_back(work):
    """py-sft/ loaded back by the lab's CLI (`rlhf import`) computes what transformers computes."""
    probe = load_probe(work, "back")
    check(probe["role"] == "sft", "lab: py-sft/ loaded back as π_ref")
    check_language_model(os.path.join(work, "py-sft"), probe, "py-sft loaded back")
    original = load_probe(work, "sft")
    moved = max(abs(a - b) for s, t in zip(original["sequences"], probe["sequences"]) for ra, rb in zip(s["logits"], t["logits"]) for a, b in zip(ra, rb) if a > -1e8)
    check(moved > 1e-3, f"lab: the edit made in Python is in the loaded model (logits moved by up to {moved:.4f})")


def main():
    work = sys.argv[1]
    if "--back" in sys.argv:
        check_loaded_back(work)
        print(f"{passed} passed, 0 failed")
        return
    probe = load_probe(work, "sft")
    check_tokenizer(os.path.join(work, "hf-sft"), probe)
    for role in ("sft", "dpo"):
        check_language_model(os.path.join(work, f"hf-{role}"), load_probe(work, role), role)
    check_reward_model(os.path.join(work, "hf-reward"), load_probe(work, "reward"))
    check_preferences(work)
    save_from_python(work)
    print(f"{passed} passed, 0 failed")


if __name__ == "__main__":
    main()
