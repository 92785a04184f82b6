#!/usr/bin/env bash
# Alternated runs of two builds (BIN_BEFORE, BIN_AFTER: folders holding
# gen-data, train-sft and decode-bench): gen-data APR traces, tiny SFT
# target tokens/s (40 steps) and decode-bench (small, batch 1 and 64).
# Usage: BIN_BEFORE=dir BIN_AFTER=dir PROBLEMS=file benches/baselines/split_before_after.sh
set -u
cd "$(dirname "$0")/../.."
head -3000 "$PROBLEMS" > /tmp/perf-problems.jsonl
for r in 1 2 3 4; do
  for v in before after; do
    if [ $v = before ]; then b=$BIN_BEFORE; else b=$BIN_AFTER; fi
    t0=$(date +%s.%N)
    $b/gen-data traces --solver apr --problems "$PROBLEMS" --seed 1 --out /tmp/perf-$v-traces.jsonl --threads 2 >/dev/null 2>&1
    t1=$(date +%s.%N)
    echo "gen-data $v round $r: $(echo "$t1 - $t0" | bc) s"
    rm -rf /tmp/perf-sft-$v
    $b/gen-data traces --solver apr --problems /tmp/perf-problems.jsonl --seed 1 --out /tmp/perf-sft-traces.jsonl >/dev/null 2>&1
    $b/train-sft --config experiments/configs/sft-tiny-apr.toml --out /tmp/perf-sft-$v --train /tmp/perf-sft-traces.jsonl --max-steps 40 --quiet 2>&1 | grep -o "[0-9]* target tokens/s" | sed "s/^/sft $v round $r: /"
    $b/decode-bench --preset small --batches 1,64 --new-tokens 64 2>/dev/null | python3 -c "import json,sys
for l in sys.stdin:
    if l.startswith('{'):
        r=json.loads(l); print('decode $v round $r: batch', r['batch'], round(r['tokens_per_s'],1), 'tok/s')"
  done
done
