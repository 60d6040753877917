#!/usr/bin/env python3
"""How much of each gold term a trunk's hidden state at the read position carries.

Reads the JSON lines of `cargo run --release --example probe -- ckpt labels` and fits, per gold
term, a ridge probe on the first half of the completions: linear on the hidden state, and
nonlinear on 3,000 random ReLU features of it. Prints R² on the second half. Needs numpy.

usage: python3 scripts/probe-terms.py hidden.jsonl
"""
import json, sys
import numpy as np

TERMS = ["sentiment", "fluency", "repetitions", "ending", "length", "relevance", "total"]
rows = [json.loads(line) for line in open(sys.argv[1])]
H = np.array([r["hidden"] for r in rows])
H = (H - H.mean(0)) / (H.std(0) + 1e-6)
half = len(H) // 2
rng = np.random.default_rng(0)
W = rng.normal(size=(H.shape[1], 3000)) / np.sqrt(H.shape[1])
features = {
    "linear": np.hstack([H, np.ones((len(H), 1))]),
    "nonlinear": np.hstack([np.maximum(H @ W + rng.normal(size=3000), 0), H, np.ones((len(H), 1))]),
}
for kind, F in features.items():
    A, B = F[:half], F[half:]
    scores = []
    for term in TERMS:
        y = np.array([min(r["gold"][term], 6.0) if term == "repetitions" else r["gold"][term] for r in rows])
        w = np.linalg.solve(A.T @ A + 10.0 * np.eye(A.shape[1]), A.T @ y[:half])
        residual = y[half:] - B @ w
        scores.append(f"{term} {1 - (residual ** 2).sum() / ((y[half:] - y[half:].mean()) ** 2).sum():.2f}")
    print(f"{kind:9s} R² on held-out completions: " + " | ".join(scores))
