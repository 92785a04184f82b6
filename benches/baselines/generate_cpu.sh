#!/usr/bin/env bash
# Decoding throughput of the rollout engine (`decode-bench`) and of
# PyTorch + transformers `generate` on the same checkpoint and prompts, run
# back to back on this machine. Usage:
#   benches/baselines/generate_cpu.sh [MODEL_DIR|-] [BATCHES] [NEW_TOKENS]
# MODEL_DIR `-` (the default) makes a random-weight model of preset $PRESET
# (default `tiny`; `small` is the 25M-parameter preset). With
# COMPARE_BURN=1 the engine also runs every batch with its steps through
# burn's ops (the path before the host decoder), for a "burn" column.
# Needs: cargo build --release -p apr-experiments; python3 with torch and transformers.
set -euo pipefail
# Keep freed memory committed (see .cargo/config.toml).
export MIMALLOC_PURGE_DELAY=${MIMALLOC_PURGE_DELAY:--1}
model=${1:--}
batches=${2:-1,8,64,256}
new=${3:-128}
dir=$(mktemp -d)
bin=target/release
if [ "$model" = "-" ]; then
  model_args=(--preset "${PRESET:-tiny}" --save-model "$dir/model")
  model="$dir/model"
else
  model_args=(--model "$model")
fi
"$bin/decode-bench" "${model_args[@]}" --batches "$batches" --new-tokens "$new" \
  --dump "$dir/dump.json" ${COMPARE_BURN:+--compare-burn} | tee "$dir/rust.jsonl"
python3 benches/baselines/generate_torch.py "$model" "$dir/dump.json" --batches "$batches" \
  --new-tokens "$new" | tee "$dir/torch.jsonl"
python3 - "$dir/rust.jsonl" "$dir/torch.jsonl" <<'PY'
import json, sys
rows = list(map(json.loads, open(sys.argv[1])))
r = {j["batch"]: j for j in rows if "burn)" not in j["impl"]}
burn = {j["batch"]: j for j in rows if "burn)" in j["impl"]}
t = {j["batch"]: j for j in map(json.loads, open(sys.argv[2])) if "batch" in j}
b1 = r[min(r)]["tokens_per_s"]
extra = " burn path tokens/s | host / burn |" if burn else ""
print("| batch | apr-rollout tokens/s | x batch 1 | transformers tokens/s | apr / transformers |" + extra)
print("|---|---|---|---|---|" + ("---|---|" if burn else ""))
for b in sorted(r):
    x, y = r[b]["tokens_per_s"], t[b]["tokens_per_s"]
    line = f"| {b} | {x:,.0f} | {x / b1:.1f}x | {y:,.0f} | {x / y:.2f}x |"
    if b in burn:
        z = burn[b]["tokens_per_s"]
        line += f" {z:,.0f} | {x / z:.2f}x |"
    print(line)
PY
rm -rf "$dir"
