#!/usr/bin/env bash
# Alternated runs of two builds of the native rollout path (BIN_BEFORE,
# BIN_AFTER: folders holding decode-bench and rollout): decode-bench (small
# preset, batch 1 and 64, 64 new tokens) and greedy APR rollouts of MODEL
# on PROBLEMS (generated tokens/s of the whole engine run, spawns and joins
# included). Usage:
#   BIN_BEFORE=dir BIN_AFTER=dir MODEL=dir PROBLEMS=file ROUNDS=3 \
#     benches/baselines/engine_split_before_after.sh
set -u
cd "$(dirname "$0")/../.."
for r in $(seq "${ROUNDS:-3}"); do
  for v in before after; do
    if [ $v = before ]; then b=$BIN_BEFORE; else b=$BIN_AFTER; fi
    $b/decode-bench --preset small --batches 1,64 --new-tokens 64 2>/dev/null | python3 -c "import json,sys
for l in sys.stdin:
    if l.startswith('{'):
        r=json.loads(l); print('decode $v round $r: batch', r['batch'], round(r['tokens_per_s'],1), 'tok/s')"
    $b/rollout --model "$MODEL" --problems "$PROBLEMS" --max-new-tokens 2048 2>/dev/null \
      | grep -o "= [0-9]* generated tokens/s" | sed "s/^/rollout $v round $r: /"
  done
done
