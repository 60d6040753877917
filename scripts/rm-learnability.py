#!/usr/bin/env python3
"""Can a transformer of the tiny preset's shape learn the gold utility from this much data at all?

A PyTorch replica of the reward model (GPT-2 style: token and position embeddings, pre-LayerNorm
blocks, a final LayerNorm, a scalar head read at the last real token), trained from scratch by
regression on 2u, the exact gold utility of each training completion: no label noise, the most a
reward model could be told. Prints, on the held-out pairs, the agreement ceiling at tau and the
*expected* accuracy (as scripts/rm-gap.py: max(p, 1 - p) where the model orders the pair as the
gold utility does, min(p, 1 - p) where not), the R² of r against u, and the weight of each gold
term in a regression of r on the terms (gold: 1.2, 1.5, -0.5, 1, 1, 1).

Inputs: a labels file of pairs sampled from pi_ref and, in the same order, the gold utility of
each completion, which `cargo run --release --example probe -- ckpt labels.jsonl` prints. The
first --train-pairs pairs train, the rest are held out. --pool adds the completions of another
labels file (gold from its own probe output) to the training set: more data than the lab has.

Used for README "How close the reward model gets to the agreement ceiling". Needs torch and numpy
(the benchmark's .venv-bench has torch: `.venv-bench/bin/pip install numpy`). One thread; a run on
3,600 training completions takes ~25 s here.

usage: rm-learnability.py labels.jsonl probe.jsonl [--pool labels2.jsonl probe2.jsonl N]
       [--train-pairs 1800] [--epochs 16] [--layers 2] [--d 64] [--heads 4] [--lr 1e-3]
       [--read last|sum] [--target total|<term>] [--seed 1]
"""
import argparse, json, math, random
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

TERMS = ["sentiment", "fluency", "repetitions", "ending", "length", "relevance"]
SEQ_LEN = 25  # src/rlhf/task/grammar.rs: PROMPT_LEN 5 + MAX_COMPLETION 20

parser = argparse.ArgumentParser()
parser.add_argument("labels")
parser.add_argument("probe")
parser.add_argument("--pool", nargs=3, metavar=("LABELS", "PROBE", "N"))
parser.add_argument("--train-pairs", type=int, default=1800)
parser.add_argument("--epochs", type=int, default=16)
parser.add_argument("--layers", type=int, default=2)
parser.add_argument("--d", type=int, default=64)
parser.add_argument("--heads", type=int, default=4)
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--read", choices=["last", "sum"], default="last")
parser.add_argument("--target", default="total")
parser.add_argument("--tau", type=float, default=0.5)
parser.add_argument("--seed", type=int, default=1)
args = parser.parse_args()
torch.set_num_threads(1)
torch.manual_seed(args.seed)
random.seed(args.seed)


def completions(labels_path, probe_path, limit=None):
    """(words, gold terms) of each completion, pairs flattened first, second."""
    pairs = [json.loads(line) for line in open(labels_path)]
    texts = [["<bos>"] + p["prompt"].split() + p[side].split() for p in pairs for side in ("first", "second")]
    golds = [json.loads(line)["gold"] for line in open(probe_path)]
    if len(golds) != len(texts):
        raise SystemExit(f"{probe_path} has {len(golds)} completions, {labels_path} {len(texts)}: not the probe of these labels")
    return list(zip(texts, golds))[:limit]


main = completions(args.labels, args.probe)
pool = completions(args.pool[0], args.pool[1], int(args.pool[2])) if args.pool else []
vocab = {w: i + 1 for i, w in enumerate(sorted({w for words, _ in main + pool for w in words}))}


def tensors(rows):
    tokens = torch.zeros(len(rows), SEQ_LEN, dtype=torch.long)
    last = torch.zeros(len(rows), dtype=torch.long)
    for i, (words, _) in enumerate(rows):
        ids = [vocab[w] for w in words][:SEQ_LEN]
        tokens[i, : len(ids)] = torch.tensor(ids)
        last[i] = len(ids) - 1
    return tokens, last


def value(gold, term):
    return min(gold[term], 6.0) if term == "repetitions" else gold[term]


n_train = 2 * args.train_pairs
train_rows = main[:n_train] + pool
held_rows = main[n_train:]
train_x, train_last = tensors(train_rows)
held_x, held_last = tensors(held_rows)
train_y = torch.tensor([value(g, args.target) for _, g in train_rows])
held_y = torch.tensor([value(g, args.target) for _, g in held_rows])
D, H = args.d, args.heads


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(D), nn.LayerNorm(D)
        self.qkv, self.out = nn.Linear(D, 3 * D), nn.Linear(D, D)
        self.mlp = nn.Sequential(nn.Linear(D, 4 * D), nn.GELU(), nn.Linear(4 * D, D))

    def forward(self, x):
        b, t, _ = x.shape
        heads = lambda z: z.view(b, t, H, D // H).transpose(1, 2)
        q, k, v = self.qkv(self.ln1(x)).split(D, 2)
        y = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), is_causal=True)
        x = x + self.out(y.transpose(1, 2).reshape(b, t, D))
        return x + self.mlp(self.ln2(x))


class RewardModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(len(vocab) + 1, D), nn.Embedding(SEQ_LEN, D)
        self.blocks = nn.ModuleList(Block() for _ in range(args.layers))
        self.ln, self.head = nn.LayerNorm(D), nn.Linear(D, 1)

    def forward(self, tokens, last):
        h = self.wte(tokens) + self.wpe.weight[None]
        for block in self.blocks:
            h = block(h)
        r = self.head(self.ln(h)).squeeze(-1)
        if args.read == "last":
            return r[torch.arange(len(tokens)), last]
        positions = torch.arange(SEQ_LEN)[None]
        return (r * ((positions >= 5) & (positions <= last[:, None]))).sum(1)


model = RewardModel()
optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
batch = 32
steps = args.epochs * (len(train_rows) // batch)
schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1 - s / steps)
order = list(range(len(train_rows)))
for epoch in range(args.epochs):
    random.shuffle(order)
    for i in range(0, len(order) - batch + 1, batch):
        b = torch.tensor(order[i : i + batch])
        loss = F.mse_loss(model(train_x[b], train_last[b]), 2 * train_y[b])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()

with torch.no_grad():
    r_train = model(train_x, train_last) / 2
    r_held = model(held_x, held_last) / 2
r2 = lambda r, y: float(1 - ((r - y) ** 2).mean() / y.var())
ceiling = expected = 0.0
for i in range(0, len(held_rows), 2):
    du = held_rows[i][1]["total"] - held_rows[i + 1][1]["total"]
    d = float(r_held[i] - r_held[i + 1])
    best = 1 / (1 + math.exp(-abs(du) / args.tau))
    ceiling += best
    expected += 0.5 if du == 0 or d == 0 else (best if (d > 0) == (du > 0) else 1 - best)
pairs = len(held_rows) // 2
terms = np.array([[value(g, t) for t in TERMS] + [1.0] for _, g in held_rows])
weights, *_ = np.linalg.lstsq(terms, r_held.numpy(), rcond=None)
print(json.dumps({
    "settings": {k: v for k, v in vars(args).items() if k not in ("labels", "probe")},
    "train_completions": len(train_rows), "held_out_pairs": pairs,
    "r2_train": round(r2(r_train, train_y), 3), "r2_held_out": round(r2(r_held, held_y), 3),
    **({"ceiling": round(ceiling / pairs, 4), "expected_accuracy": round(expected / pairs, 4),
        "gap_points": round(100 * (ceiling - expected) / pairs, 1)} if args.target == "total" else {}),
    "term_weights": dict(zip(TERMS, np.round(weights[:6], 2).tolist())),
}))
