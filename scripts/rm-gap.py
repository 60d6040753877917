#!/usr/bin/env python3
"""Where a reward model loses accuracy against the agreement ceiling.

Reads the JSON lines of `RLHF_INSPECT=1 rlhf reward ...` (each held-out pair with the model's
scores and the gold utility's terms) and prints, for the labeler noise tau:
- the ceiling and the model's *expected* held-out accuracy: for each pair, max(p, 1 - p) where
  the model orders it as the gold utility does and min(p, 1 - p) where not, p = sigma(du / tau).
  Unlike the realized accuracy it carries no label noise, so settings compare on one run;
- the accuracy lost, split by the gold term that most supports the right order of each pair the
  model orders wrongly.

usage: RLHF_INSPECT=1 rlhf reward --sft sft.rlhf ... > run.jsonl; python3 scripts/rm-gap.py run.jsonl [tau]
"""
import json, math, sys
from collections import Counter

# u = 1.2·sentiment + 1.5·(fluency − 1) − 0.5·min(repetitions, 6) + ending + length + relevance (src/rlhf/task/gold.rs);
# checked against each pair's total below.
TERMS = {"sentiment": 1.2, "fluency": 1.5, "repetitions": -0.5, "ending": 1.0, "length": 1.0, "relevance": 1.0}


def term(g, name):
    return min(g[name], 6.0) if name == "repetitions" else g[name]


def main():
    tau = float(sys.argv[2]) if len(sys.argv) > 2 else 0.5
    pairs = [json.loads(line)["inspect"] for line in open(sys.argv[1]) if '"inspect"' in line]
    if not pairs:
        sys.exit("no inspected pairs: run `rlhf reward` with RLHF_INSPECT=1")
    ceiling = expected = 0.0
    lost = Counter()
    for p in pairs:
        for side in ("first", "second"):  # TERMS must still be gold.rs's weights
            g = p[f"gold_terms_{side}"]
            if abs(sum(w * term(g, t) for t, w in TERMS.items()) - 1.5 - g["total"]) > 1e-4:
                sys.exit(f"the gold terms no longer sum to the total as TERMS says: update TERMS from src/rlhf/task/gold.rs ({g})")
        d = p["r_first"] - p["r_second"]
        du = p["gold_first"] - p["gold_second"]
        best = 1 / (1 + math.exp(-abs(du) / tau))
        ceiling += best
        if du == 0 or d == 0:
            expected += 0.5
        elif (d > 0) == (du > 0):
            expected += best
        else:
            expected += 1 - best
            sign = 1 if du > 0 else -1
            support = {t: w * (term(p["gold_terms_first"], t) - term(p["gold_terms_second"], t)) * sign for t, w in TERMS.items()}
            lost[max(support, key=support.get)] += 2 * best - 1
    n = len(pairs)
    print(f"{n} held-out pairs, tau {tau}: ceiling {ceiling / n:.4f}, expected accuracy {expected / n:.4f}, gap {100 * (ceiling - expected) / n:.1f} points")
    for t, c in lost.most_common():
        print(f"  lost where {t} decides: {100 * c / n:.1f} points")


main()
