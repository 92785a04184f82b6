"""Greedy accuracy of two models on the same problems, with Wilson intervals, and B - A
with a 95% paired-bootstrap interval (10,000 resamples of the problems, seed 0).
Usage: python3 paired.py A/greedy.jsonl.gz B/greedy.jsonl.gz [C ...]  (each one vs the first)
"""
import gzip
import json
import math
import random
import sys


def solved(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        rows = [json.loads(line) for line in f]
    return {(r["problem"], r.get("sample", 0)): bool(r["solved"]) for r in rows}


def wilson(k, n, z=1.96):
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return 100 * (c - h), 100 * (c + h)


def main(paths):
    base = solved(paths[0])
    keys = sorted(base)
    a = [base[k] for k in keys]
    lo, hi = wilson(sum(a), len(a))
    print(f"A {paths[0]}: {100 * sum(a) / len(a):.1f}% ({lo:.1f}-{hi:.1f}), n={len(a)}")
    for path in paths[1:]:
        other = solved(path)
        if sorted(other) != keys:
            sys.exit(f"{path}: not the same problems as {paths[0]}")
        b = [other[k] for k in keys]
        d = [int(y) - int(x) for x, y in zip(a, b)]
        n = len(d)
        rng = random.Random(0)
        means = sorted(sum(d[rng.randrange(n)] for _ in range(n)) / n for _ in range(10000))
        lo, hi = wilson(sum(b), n)
        print(
            f"B {path}: {100 * sum(b) / n:.1f}% ({lo:.1f}-{hi:.1f}); "
            f"B - A {100 * sum(d) / n:+.1f} ({100 * means[250]:+.1f} to {100 * means[9749]:+.1f})"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
