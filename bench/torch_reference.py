"""PyTorch CPU reference for the benchmark: the same GPT (pre-LayerNorm blocks, fused QKV, GELU,
tied LM head), the same shapes and the same work as `src/app/bench.rs`, timed the same way.

    python bench/torch_reference.py --presets micro,tiny,small   # JSON lines on stdout

Installed only when the benchmark is asked for (scripts/bench.sh), never by the test command.
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB = 123          # the review task's vocabulary (src/rlhf/task/vocab.rs)
CONTEXT = 32
PROMPT_LEN = 5
NEW_TOKENS = 20      # MAX_COMPLETION
SEQ_LEN = PROMPT_LEN + NEW_TOKENS
PRESETS = {"micro": (32, 1, 2), "tiny": (64, 2, 4), "small": (128, 4, 4)}


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d)
        self.out = nn.Linear(4 * d, d)

    def attend(self, x, cache=None):
        B, T, D = x.shape
        hd = D // self.heads
        q, k, v = self.qkv(x).split(D, dim=2)
        q, k, v = (t.view(B, T, self.heads, hd).transpose(1, 2) for t in (q, k, v))
        if cache is not None:
            if cache.get("k") is not None:
                k = torch.cat([cache["k"], k], dim=2)
                v = torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        y = F.scaled_dot_product_attention(q, k, v, is_causal=(T > 1))
        return self.proj(y.transpose(1, 2).reshape(B, T, D))

    def forward(self, x, cache=None):
        x = x + self.attend(self.ln_1(x), cache)
        return x + self.out(F.gelu(self.fc(self.ln_2(x))))


class Gpt(nn.Module):
    def __init__(self, d, layers, heads):
        super().__init__()
        self.wte = nn.Embedding(VOCAB, d)
        self.wpe = nn.Embedding(CONTEXT, d)
        self.blocks = nn.ModuleList([Block(d, heads) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d)

    def hidden(self, tokens, start=0, caches=None):
        T = tokens.shape[1]
        x = self.wte(tokens) + self.wpe(torch.arange(start, start + T))
        for i, block in enumerate(self.blocks):
            x = block(x, None if caches is None else caches[i])
        return self.ln_f(x)

    def forward(self, tokens):
        return self.hidden(tokens) @ self.wte.weight.t()


class Scalar(nn.Module):
    def __init__(self, gpt, d):
        super().__init__()
        self.trunk = gpt
        self.head = nn.Linear(d, 1)

    def forward(self, tokens):
        return self.head(self.trunk.hidden(tokens)).squeeze(-1)


@torch.no_grad()
def generate(model, prompts, steps=NEW_TOKENS, temperature=1.0):
    caches = [dict() for _ in model.blocks]
    h = model.hidden(prompts, 0, caches)[:, -1:]
    out = []
    for t in range(steps):
        logits = (h @ model.wte.weight.t())[:, -1] / temperature
        gumbel = -torch.log(-torch.log(torch.rand_like(logits).clamp_min(1e-9)))
        nxt = (logits + gumbel).argmax(-1, keepdim=True)
        out.append(nxt)
        if t + 1 < steps:
            h = model.hidden(nxt, prompts.shape[1] + t, caches)
    return torch.cat(out, 1)


def measure(preset, plan):
    d, layers, heads = PRESETS[preset]
    torch.manual_seed(1)
    model = Gpt(d, layers, heads)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    tokens = torch.randint(4, VOCAB, (16, SEQ_LEN))

    def train_step():
        logits = model(tokens[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), tokens[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()  # the step's readback

    for _ in range(plan["warmup"]):
        train_step()
    t0 = time.perf_counter()
    for _ in range(plan["steps"]):
        train_step()
    step_ms = (time.perf_counter() - t0) * 1e3 / plan["steps"]

    prompts = torch.randint(4, VOCAB, (16, PROMPT_LEN))
    generate(model, prompts)
    t0 = time.perf_counter()
    for _ in range(plan["generations"]):
        generate(model, prompts).tolist()
    token_ms = (time.perf_counter() - t0) * 1e3 / (plan["generations"] * NEW_TOKENS)

    # One PPO iteration with the default settings: 32 rollouts, 4 epochs x 2 minibatches.
    policy, ref = model, Gpt(d, layers, heads)
    value, reward = Scalar(Gpt(d, layers, heads), d), Scalar(Gpt(d, layers, heads), d)
    ppo_opt = torch.optim.Adam(list(policy.parameters()) + list(value.parameters()), lr=1e-4)

    def ppo_iteration():
        prompts = torch.randint(4, VOCAB, (32, PROMPT_LEN))
        completions = generate(policy, prompts, temperature=0.7)
        seqs = torch.cat([prompts, completions], 1)
        inputs, targets = seqs[:, :-1], seqs[:, PROMPT_LEN:]
        with torch.no_grad():
            old = F.log_softmax(policy(inputs)[:, PROMPT_LEN - 1:] / 0.7, -1).gather(-1, targets[..., None])[..., 0]
            F.log_softmax(ref(inputs)[:, PROMPT_LEN - 1:] / 0.7, -1).gather(-1, targets[..., None])
            old_v = value(inputs)[:, PROMPT_LEN - 1:]
            reward(seqs)[:, -1]
        adv = torch.randn_like(old)
        ret = old_v + adv
        for _ in range(4):
            for mb in torch.randperm(32).split(16):
                logits = policy(inputs[mb])[:, PROMPT_LEN - 1:] / 0.7
                lp = F.log_softmax(logits, -1).gather(-1, targets[mb][..., None])[..., 0]
                ratio = (lp - old[mb]).exp()
                pg = torch.max(-adv[mb] * ratio, -adv[mb] * ratio.clamp(0.8, 1.2)).mean()
                v = value(inputs[mb])[:, PROMPT_LEN - 1:]
                vf = 0.5 * ((v - ret[mb]) ** 2).mean()
                loss = pg + 0.1 * vf
                ppo_opt.zero_grad(set_to_none=True)
                loss.backward()
                ppo_opt.step()
                loss.item()

    ppo_iteration()
    t0 = time.perf_counter()
    for _ in range(plan["ppo"]):
        ppo_iteration()
    ppo_ms = (time.perf_counter() - t0) * 1e3 / plan["ppo"]
    # The 2-thread run is the reference every ratio divides by; others are rows of their own.
    threads = torch.get_num_threads()
    backend = "pytorch-cpu" if threads == 2 else f"pytorch-cpu-{threads}-thread{'s' if threads > 1 else ''}"
    return {"preset": preset, "backend": backend, "parameters": params, "train_step_ms": step_ms,
            "token_ms": token_ms, "ppo_iteration_ms": ppo_ms, "torch": torch.__version__,
            "threads": threads}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--presets", default="micro,tiny,small")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    plan = {"warmup": 3, "steps": 20, "generations": 5, "ppo": 2}
    for preset in args.presets.split(","):
        print(json.dumps(measure(preset, plan)), flush=True)
