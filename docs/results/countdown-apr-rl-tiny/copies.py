"""Why an APR model's answer is wrong after a child reported success.

In the solver's traces the root's final call rewrites the winning child's
goal path verbatim after the join block: the text from `Moving to Node #0,k`
on equals that child's message in the join block (all 1,876 such traces
among the first 3,000 of the tiny preset's training set). For each unsolved
problem of a greedy results file (`eval/<model>/greedy.jsonl.gz`) whose
final call has a successful child, this says whether the parent named a
non-winning child, copied the winning child's message exactly (so the
child's own path was wrong), or wrote something that differs from it, and
for the last, which line differs first: the child's `Current State` (the
parent had already written another node's operation from the root) or the
child's step.

    python3 copies.py tried-code-rerun-grpo-t06/apr-sft-greedy.jsonl.gz
"""
import collections
import gzip
import json
import re
import sys

WIN = re.compile(r"<Goal Reached in Sub Search \d+ at level 1 at Node (#[\d,]+)>\n(.*?)(?=\n<)", re.S)

counts = collections.Counter()
for line in gzip.open(sys.argv[1], "rt"):
    r = json.loads(line)
    if r["solved"]:
        continue
    last = r["trace_dict"]["main_calls"][-1]
    if "<End Sub Searches>" not in last:
        continue
    join, after = last.split("<End Sub Searches>", 1)
    wins = {m.group(1): m.group(2).strip() for m in WIN.finditer(join)}
    if not wins:
        continue
    m = re.search(r"Moving to Node (#0,\d+)\n(.*)", after, re.S)
    if not m or m.group(1) not in wins:
        counts["parent names a child that did not succeed"] += 1
    elif ("Moving to Node " + m.group(1) + "\n" + m.group(2)).strip() == wins[m.group(1)]:
        counts["exact copy of the winning child (its own path is wrong)"] += 1
    else:
        counts["parent's path differs from the winning child's message"] += 1
        want = wins[m.group(1)].split("\n")
        got = ("Moving to Node " + m.group(1) + "\n" + m.group(2)).strip().split("\n")
        first = next(
            (w.split(":")[0] for w, g in zip(want, got) if w != g), "length"
        )
        where = {"Current State": "the root's operation", "Exploring Operation": "the child's step"}
        counts["  ... first at " + where.get(first, first)] += 1
for k, v in counts.most_common():
    print(f"{v:5}  {k}")
