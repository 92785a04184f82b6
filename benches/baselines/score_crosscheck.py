#!/usr/bin/env python3
"""Cross-checks our scorer (`score` binary, `apr_countdown::score`) against the
official checker's own functions on many texts: the reference samples, seeded
mutations of them (cut, a digit changed, a line dropped or doubled), and any
model outputs given with --results (the `greedy.jsonl` files of an evaluation).

The official functions are read from the official repository's files (given
by path; they are not copied here): `check_solution` and `get_search_result`
from tinyrl/rollout/apr_utils.py, `_parse_trajectory` from
tinyrl/rollout/sos_utils.py. Only the function definitions are executed (the
modules import serving libraries at the top).

    python3 benches/baselines/score_crosscheck.py \
        --apr-utils APR/tinyrl/rollout/apr_utils.py \
        --sos-utils APR/tinyrl/rollout/sos_utils.py \
        --score target/release/score [--results runs/x/eval/*/greedy.jsonl]

Prints, per mode, how many texts both call solved / unsolved and every kind of
disagreement with an example. Expected disagreements are only our documented
strict departures (docs/rl.md, "Answer scoring"): a SoS+ path that uses a
number twice or leaves one unused.
"""
import argparse
import ast
import json
import random
import re
import subprocess
import tempfile
from collections import Counter
from pathlib import Path


def load_functions(path, names):
    tree = ast.parse(Path(path).read_text())
    keep = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names]
    env = {"re": re, "VERBOSE": False, "print": lambda *a, **k: None}
    exec(compile(ast.Module(body=keep, type_ignores=[]), path, "exec"), env)
    missing = set(names) - set(env)
    if missing:
        raise SystemExit(f"{path}: no {missing}")
    return env


def official_apr(env, nums, target, text):
    prefix = f"Moving to Node #0\nCurrent State: {target}:{nums}, Operations: []"
    try:
        sol = env["get_search_result"](text)
        return sol is not None and bool(env["check_solution"](prefix, sol))
    except Exception:
        return False


def official_sosp(env, text):
    try:
        return env["_parse_trajectory"](text) == "Valid path."
    except Exception:
        return False


def mutations(text, rng, k):
    out = []
    lines = text.split("\n")
    for _ in range(k):
        kind = rng.randrange(4)
        if kind == 0 and len(text) > 1:
            out.append(text[: rng.randrange(1, len(text))])
        elif kind == 1:
            digits = [i for i, c in enumerate(text) if c.isdigit()]
            if digits:
                i = rng.choice(digits)
                out.append(text[:i] + str(rng.randrange(10)) + text[i + 1:])
        elif kind == 2 and len(lines) > 1:
            j = rng.randrange(len(lines))
            out.append("\n".join(lines[:j] + lines[j + 1:]))
        elif len(lines) > 1:
            j = rng.randrange(len(lines))
            out.append("\n".join(lines[: j + 1] + lines[j:]))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--apr-utils", required=True)
    ap.add_argument("--sos-utils", required=True)
    ap.add_argument("--score", required=True, help="our `score` binary")
    ap.add_argument("--samples", default="datasets/reference-samples")
    ap.add_argument("--mutations", type=int, default=50, help="per record")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--results", nargs="*", default=[], help="greedy.jsonl files (ProblemResult lines)")
    args = ap.parse_args()
    apr_env = load_functions(args.apr_utils, {"check_solution", "get_search_result"})
    sos_env = load_functions(args.sos_utils, {"_parse_trajectory"})
    rng = random.Random(args.seed)
    texts = {"apr": [], "sosp": []}
    for mode in ("apr", "sosp"):
        for line in open(Path(args.samples) / f"{mode}.jsonl"):
            r = json.loads(line)
            base = r["trace_dict"]["main_calls"][-1] if mode == "apr" else r["search_path"]
            for t in [base] + mutations(base, rng, args.mutations):
                texts[mode].append((r["nums"], r["target"], t))
    for path in args.results:
        for line in open(path):
            r = json.loads(line)
            calls = r["trace_dict"]["main_calls"]
            mode = "apr" if calls and calls[0].startswith("Moving to Node #0") else "sosp"
            texts[mode].append((r["nums"], r["target"], calls[-1] if calls else ""))
    for mode, items in texts.items():
        with tempfile.TemporaryDirectory() as d:
            inp, out = Path(d) / "in.jsonl", Path(d) / "out.jsonl"
            with open(inp, "w") as f:
                for nums, target, t in items:
                    f.write(json.dumps({"nums": nums, "target": target, "search_path": t}) + "\n")
            subprocess.run([args.score, "--mode", mode, "--traces", str(inp), "--out", str(out)],
                           check=True, stderr=subprocess.DEVNULL)
            ours = [json.loads(l) for l in open(out)]
        tally, examples = Counter(), {}
        for (nums, target, t), o in zip(items, ours):
            off = official_apr(apr_env, nums, target, t) if mode == "apr" else official_sosp(sos_env, t)
            key = (off, o["solved"]) if off == o["solved"] else (off, o["solved"], o["reason"].split(":")[0])
            tally[key] += 1
            examples.setdefault(key, (nums, target, o["reason"]))
        print(f"{mode}: {len(items)} texts")
        for key, n in sorted(tally.items(), key=lambda kv: -kv[1]):
            agree = "agree" if key[0] == key[1] else "DISAGREE"
            print(f"  official={key[0]!s:5} ours={key[1]!s:5} {agree:8} {n:6}  {key[2] if len(key) > 2 else ''}")
            if key[0] != key[1]:
                print(f"      e.g. nums={examples[key][0]} target={examples[key][1]} reason={examples[key][2]!r}")


if __name__ == "__main__":
    main()
