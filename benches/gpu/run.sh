#!/usr/bin/env bash
# Issue 6's one-call GPU check and benchmark, for a machine with an NVIDIA
# GPU, PyTorch and transformers. From the repository root, with the CUDA
# binaries built beforehand (they need no CUDA toolkit to build):
#   cargo build --release --features cuda -p apr-experiments
#   benches/gpu/run.sh [OUT_DIR]            # default $OUT/gpu-bench or /tmp/gpu-bench
# or packed by benches/gpu/pack.sh into target/gpu-bins.tar.xz (to carry to
# a device machine; unpacked into target/release here when missing).
# Steps (each under its own time limit, so one failure leaves the rest):
#  1. a random-weight `small` model; the CPU's and CUDA's last-position
#     logits of a prompt (max |diff|, tolerance 1e-3) and the engine's greedy
#     tokens for 8 prompts x 64 new tokens on both devices (identical
#     sequences, and where the first difference is);
#  2. engine decoding tokens/s at batch 1, 64, 256 (512 new tokens, one
#     untimed warm-up run per batch: burn compiles and autotunes kernels on
#     first use), then transformers `generate` on the same model and prompts
#     in bf16;
#  3. SFT training tokens/s of `small` on APR traces (STEPS steps, the first
#     2 untimed), then the PyTorch baseline on the same token batches in f32
#     and bf16 autocast;
#  4. as the budget allows: `generate` in f32, the engine and SFT in bf16;
#  5. one table (table.md) with the device name.
# DEVICE=cpu TORCH_DEVICE=cpu NEW_TOKENS=16 STEPS=4 BATCHES=1,8 runs the same
# steps on the CPU (to check the script itself).
set -uo pipefail
# Keep freed memory committed (see .cargo/config.toml).
export MIMALLOC_PURGE_DELAY=${MIMALLOC_PURGE_DELAY:--1}
out=${1:-${OUT:-/tmp}/gpu-bench}
bin=${BIN:-target/release}
steps=${STEPS:-12}
new=${NEW_TOKENS:-512}
dev=${DEVICE:-cuda}
tdev=${TORCH_DEVICE:-cuda}
batches=${BATCHES:-1,64,256}
mkdir -p "$out"
# The binaries as benches/gpu/pack.sh carried them, when they are not built here.
if [ ! -x "$bin/decode-bench" ] && [ -f target/gpu-bins.tar.xz ]; then
  mkdir -p "$bin" && xz -dc target/gpu-bins.tar.xz | tar -C "$bin" -xf -
fi
log() { echo "[$(date +%T)] $*" | tee -a "$out/log.txt"; }
# Every step gets at most its own limit and what is left of BUDGET_S
# (default 540 s, to fit one 600-second call); steps past the budget are
# skipped (their cells show "-").
deadline=$((SECONDS + ${BUDGET_S:-540}))
run() { # run LIMIT_S NAME CMD...: output to $out/NAME.out
  local limit=$1 name=$2; shift 2
  local left=$((deadline - SECONDS))
  if [ "$left" -lt 15 ]; then log "$name: skipped (budget spent)"; return 0; fi
  [ "$limit" -gt "$left" ] && limit=$left
  log "$name (limit ${limit}s): $*"
  timeout "$limit" "$@" >"$out/$name.out" 2>"$out/$name.err"
  log "$name: exit $?"
  tail -n 3 "$out/$name.err" >>"$out/log.txt"
  return 0
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$out/device.txt" 2>&1
log "device: $(cat "$out/device.txt")"

# 1. CUDA against the CPU.
run 90 cpu-check "$bin/decode-bench" --device cpu --preset small --save-model "$out/model" \
  --batches 8 --new-tokens 64 --dump "$out/cpu-dump.json" --tokens-out "$out/cpu-tokens.json"
run 150 cuda-check "$bin/decode-bench" --device "$dev" --model "$out/model" --batches 8 \
  --new-tokens 64 --warmup-runs 1 --dump "$out/cuda-dump.json" --tokens-out "$out/cuda-tokens.json"

# 2. Decoding.
run 200 engine "$bin/decode-bench" --device "$dev" --model "$out/model" --batches "$batches" \
  --new-tokens "$new" --warmup-runs 1
run 200 generate-bf16 python3 benches/baselines/generate_torch.py "$out/model" "$out/cpu-dump.json" \
  --device "$tdev" --dtype bf16 --batches "$batches" --new-tokens "$new"

# 3. Training.
run 60 problems "$bin/gen-data" problems --count 4000 --seed 1 --out "$out/problems.jsonl"
run 60 traces "$bin/gen-data" traces --solver apr --problems "$out/problems.jsonl" --seed 1 \
  --out "$out/apr.jsonl"
cfg=experiments/configs/sft-small-apr.toml
run 60 dump-batches "$bin/train-sft" --config "$cfg" --train "$out/apr.jsonl" \
  --max-steps "$steps" --dump-batches "$out/batches.json"
run 200 sft "$bin/train-sft" --config "$cfg" --train "$out/apr.jsonl" --max-steps "$steps" \
  --device "$dev" --out "$out/sft" --quiet --time-limit-minutes 1000
run 120 torch-f32 python3 benches/baselines/sft_torch.py "$out/batches.json" --device "$tdev" --dtype f32
run 120 torch-bf16 python3 benches/baselines/sft_torch.py "$out/batches.json" --device "$tdev" --dtype bf16

# 4. Extras, as the budget allows: generate in f32, the engine and SFT in bf16.
run 200 generate-f32 python3 benches/baselines/generate_torch.py "$out/model" "$out/cpu-dump.json" \
  --device "$tdev" --dtype f32 --batches "$batches" --new-tokens "$new"
run 200 engine-bf16 "$bin/decode-bench" --device "$dev" --dtype bf16 --model "$out/model" \
  --batches "$batches" --new-tokens "$new" --warmup-runs 1
run 200 sft-bf16 "$bin/train-sft" --config "$cfg" --train "$out/apr.jsonl" --max-steps "$steps" \
  --device "$dev" --dtype bf16 --out "$out/sft-bf16" --quiet --time-limit-minutes 1000

# 5. The table.
python3 benches/gpu/table.py "$out" | tee "$out/table.md"
