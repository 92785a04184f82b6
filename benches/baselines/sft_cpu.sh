#!/usr/bin/env bash
# Training throughput of `train-sft` and of the PyTorch baseline on the same
# token batches, run back to back on this machine. Usage:
#   benches/baselines/sft_cpu.sh [CONFIG] [STEPS]
# Needs: cargo build --release -p apr-experiments; python3 with torch.
set -euo pipefail
# Keep freed memory committed (see .cargo/config.toml).
export MIMALLOC_PURGE_DELAY=${MIMALLOC_PURGE_DELAY:--1}
cfg=${1:-experiments/configs/sft-tiny-apr.toml}
steps=${2:-12}
skip=2
dir=$(mktemp -d)
bin=target/release
"$bin/train-sft" --config "$cfg" --max-steps "$steps" --dump-batches "$dir/batches.json"
"$bin/train-sft" --config "$cfg" --max-steps "$steps" --out "$dir/rust" --quiet \
  --time-limit-minutes 1000 >/dev/null
rust=$(python3 - "$dir/rust/metrics.jsonl" "$skip" <<'PY'
import json, sys
m = [json.loads(l) for l in open(sys.argv[1])]
k = int(sys.argv[2])
# Seconds between the end of the untimed steps and the end; validation
# passes are excluded by subtracting nothing: eval runs only at the end.
t = m[-1]["seconds"] - m[k - 1]["seconds"]
tok = m[-1]["tokens"] - m[k - 1]["tokens"]
print(json.dumps({"impl": "apr-rs (burn flex)", "timed_steps": len(m) - k, "target_tokens": tok,
                  "seconds": t, "tokens_per_s": tok / t, "first_loss": m[0]["loss"], "last_loss": m[-1]["loss"]}))
PY
)
torch=$(python3 benches/baselines/sft_torch.py "$dir/batches.json" --skip "$skip")
echo "$rust"
echo "$torch"
# Both sides train on the same batches for the same steps, so the ratio is
# of their times. Their target-token counts differ: apr-rs leaves the
# engine-inserted text out of the loss (`loss_on_inserted = false`), the
# PyTorch script trains on every token (the dump has no mask). The
# tokens/s line therefore counts PyTorch's tokens on both sides.
python3 - "$rust" "$torch" <<'PY'
import json, sys
r, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
assert r["timed_steps"] == t["timed_steps"], "different step counts"
same = t["target_tokens"] / r["seconds"]
print(f"apr-rs / PyTorch, the same {r['timed_steps']} steps: {r['seconds']:.2f} s / {t['seconds']:.2f} s; "
      f"tokens/s (PyTorch's count of {t['target_tokens']}) {same:.0f} / {t['tokens_per_s']:.0f} = "
      f"{t['seconds'] / r['seconds']:.2f}x")
PY
rm -rf "$dir"
