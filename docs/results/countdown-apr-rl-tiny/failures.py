"""Classifies the failures of an APR model's greedy results (eval/<model>/greedy.jsonl.gz).

For each unsolved problem: did the root's first call generate a node from which the
target is reachable; if so, did a child report a success; if so, the parent failed after
it. Also counts the nodes the first call generated and how many were distinct.
Usage: python3 failures.py eval/apr-sft/greedy.jsonl.gz
"""
import collections
import gzip
import itertools
import json
import re
import sys


def reachable(nums, target):
    if len(nums) == 1:
        return nums[0] == target
    for i, j in itertools.combinations(range(len(nums)), 2):
        a, b = nums[i], nums[j]
        rest = [nums[k] for k in range(len(nums)) if k not in (i, j)]
        results = {a + b, a * b, abs(a - b)}
        lo, hi = min(a, b), max(a, b)
        if lo and hi % lo == 0:
            results.add(hi // lo)
        if any(reachable(rest + [r], target) for r in results):
            return True
    return False


NODE = re.compile(r"Generated Node #[\d,]+: \d+:\[([\d, ]*)\]")
counts = collections.Counter()
for line in gzip.open(sys.argv[1], "rt"):
    r = json.loads(line)
    d = r["trace_dict"]
    nodes = [tuple(int(x) for x in n.split(",") if x.strip()) for n in NODE.findall(d["main_calls"][0])]
    counts["nodes"] += len(nodes)
    counts["distinct nodes"] += len({tuple(sorted(n)) for n in nodes})
    child_ok = any(
        "Goal Reached" in "".join(t["main_calls"]) for rnd in d.get("sub_calls", []) for t in rnd if t
    )
    if r["solved"]:
        counts["solved"] += 1
    elif not any(reachable(list(n), r["target"]) for n in nodes):
        counts["failed: no node of the first call reaches the target"] += 1
    elif not child_ok:
        counts["failed: a node reaches it, no child reported success"] += 1
    else:
        counts["failed: a child reported success, the parent's answer is wrong"] += 1
    counts["problems"] += 1
for k, v in counts.items():
    print(f"{k}: {v}")
