#!/usr/bin/env python3
"""The table of benches/gpu/run.sh from its output directory (missing
pieces show as "-"). Usage: table.py OUT_DIR"""
import json
import os
import sys

out = sys.argv[1]


def path(name):
    return os.path.join(out, name)


def load(name):
    try:
        with open(path(name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def lines(name):
    rows = []
    try:
        with open(path(name)) as f:
            for line in f:
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    pass
    except OSError:
        pass
    return rows


def by_batch(name, impl_filter=None):
    return {r["batch"]: r["tokens_per_s"] for r in lines(name)
            if "batch" in r and (impl_filter is None or impl_filter(r))}


def fmt(x):
    return "-" if x is None else f"{x:,.0f}"


def ratio(a, b):
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


device = open(path("device.txt")).read().strip() if os.path.exists(path("device.txt")) else "?"
print(f"Device: {device}\n")

# 1. Checks.
cpu, gpu = load("cpu-dump.json"), load("cuda-dump.json")
print("| check | result |")
print("|---|---|")
if cpu and gpu:
    a, b = cpu["check_logits"], gpu["check_logits"]
    diff = max(abs(x - y) for x, y in zip(a, b))
    same_max = max(range(len(a)), key=a.__getitem__) == max(range(len(b)), key=b.__getitem__)
    verdict = "ok" if diff <= 1e-3 and same_max else "FAIL"
    print(f"| last-position logits, CUDA vs CPU (tolerance 1e-3) | max abs diff {diff:.2e}, "
          f"arg-max equal: {same_max}: {verdict} |")
else:
    print("| last-position logits, CUDA vs CPU | - (a dump is missing) |")
ct, gt = load("cpu-tokens.json"), load("cuda-tokens.json")
if ct and gt and "8" in ct and "8" in gt:
    pairs = list(zip(ct["8"], gt["8"]))
    same = sum(x == y for x, y in pairs)
    first = [next((i for i, (u, v) in enumerate(zip(x, y)) if u != v), None) for x, y in pairs]
    diverged = [f for f in first if f is not None]
    where = f"; first difference at token {min(diverged)}" if diverged else ""
    print(f"| engine greedy tokens, 8 x 64, CUDA vs CPU | {same}/{len(pairs)} sequences identical{where} |")
else:
    print("| engine greedy tokens, CUDA vs CPU | - (a token file is missing) |")

# 2. Decoding.
eng = by_batch("engine.out", lambda r: "impl" in r)
e16 = by_batch("engine-bf16.out", lambda r: "impl" in r)
g16, g32 = by_batch("generate-bf16.out"), by_batch("generate-f32.out")
print("\n| batch | engine f32 tokens/s | engine bf16 | generate bf16 | generate f32 "
      "| engine f32 / generate bf16 | engine bf16 / generate bf16 | engine f32 / generate f32 |")
print("|---|---|---|---|---|---|---|---|")
for b in sorted(set(eng) | set(e16) | set(g16) | set(g32)):
    e, h, x, y = eng.get(b), e16.get(b), g16.get(b), g32.get(b)
    print(f"| {b} | {fmt(e)} | {fmt(h)} | {fmt(x)} | {fmt(y)} | {ratio(e, x)} | {ratio(h, x)} "
          f"| {ratio(e, y)} |")


# 3. Training.
def sft_rate(name):
    m = lines(name)
    if len(m) <= 2:
        return None, len(m)
    dt = m[-1]["seconds"] - m[1]["seconds"]
    return ((m[-1]["tokens"] - m[1]["tokens"]) / dt if dt > 0 else None), len(m)


r32, n32 = sft_rate("sft/metrics.jsonl")
r16, n16 = sft_rate("sft-bf16/metrics.jsonl")
t32 = (lines("torch-f32.out") or [{}])[-1].get("tokens_per_s")
t16 = (lines("torch-bf16.out") or [{}])[-1].get("tokens_per_s")
print("\n| SFT, `small`, target tokens/s (first 2 steps untimed) | apr-rs | PyTorch | apr-rs / PyTorch |")
print("|---|---|---|---|")
print(f"| f32 ({n32} steps) | {fmt(r32)} | {fmt(t32)} | {ratio(r32, t32)} |")
print(f"| bf16: apr-rs bf16 weights ({n16} steps), PyTorch bf16 autocast | {fmt(r16)} | {fmt(t16)} "
      f"| {ratio(r16, t16)} |")
