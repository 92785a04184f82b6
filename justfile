# apr-rs tasks. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# The test suite (what CI runs).
test:
    cargo test --workspace

# Lints: formatting and clippy with warnings as errors.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Criterion benches (results in target/criterion).
bench:
    cargo bench -p apr-benches

# Run an experiment by name, e.g. `just exp countdown-apr-rl --force`.
exp name="countdown-apr-rl" *ARGS:
    cargo run --release -p apr-experiments --bin {{name}} -- {{ARGS}}

# gen-data passthrough: `just gen-data problems --count 10 --out x.jsonl`.
gen-data *ARGS:
    cargo run --release -p apr-experiments --bin gen-data -- {{ARGS}}

# Regenerate the committed tokenizer.json.
tokenizer:
    cargo run --release -p apr-experiments --bin gen-data -- tokenizer --out datasets/tokenizer/tokenizer.json

# The solve-rate and token-length measurements of docs/countdown-data.md.
data-report n="5000" seed="1":
    mkdir -p runs/data
    cargo run --release -p apr-experiments --bin gen-data -- problems --count {{n}} --seed {{seed}} --exclude datasets/countdown-val/val.jsonl --out runs/data/problems.jsonl
    cargo run --release -p apr-experiments --bin gen-data -- traces --solver apr --problems runs/data/problems.jsonl --seed {{seed}} --out runs/data/apr.jsonl
    cargo run --release -p apr-experiments --bin gen-data -- traces --solver sosp --problems runs/data/problems.jsonl --seed {{seed}} --out runs/data/sosp.jsonl
    cargo run --release -p apr-experiments --bin gen-data -- stats runs/data/apr.jsonl
    cargo run --release -p apr-experiments --bin gen-data -- stats runs/data/sosp.jsonl

# SFT passthrough: `just train-sft --config experiments/configs/sft-tiny-apr.toml`.
train-sft *ARGS:
    cargo run --release -p apr-experiments --bin train-sft -- {{ARGS}}

# Sample a trained model: `just sample --model runs/sft-tiny-apr/model --nums 5,39,9,87 --target 62`.
sample *ARGS:
    cargo run --release -p apr-experiments --bin sample -- {{ARGS}}

# The tiny SFT run of docs/model.md: data, 30 minutes of training, validation sampling.
sft-tiny:
    mkdir -p runs/data
    cargo run --release -p apr-experiments --bin gen-data -- problems --count 20000 --seed 1 --exclude datasets/countdown-val/val.jsonl --out runs/data/problems.jsonl
    cargo run --release -p apr-experiments --bin gen-data -- traces --solver apr --problems runs/data/problems.jsonl --seed 1 --out runs/data/apr.jsonl
    cargo run --release -p apr-experiments --bin train-sft -- --config experiments/configs/sft-tiny-apr.toml
    cargo run --release -p apr-experiments --bin sample -- --model runs/sft-tiny-apr/model --problems datasets/countdown-val/val.jsonl --limit 100 --out runs/sft-tiny-apr/val-samples.jsonl

# The 3-number tiny SFT run of docs/model.md: data, 30 minutes of training, greedy rollouts of the 300 validation problems.
sft-tiny3:
    mkdir -p runs/n3s
    cargo run --release -p apr-experiments --bin gen-data -- problems --count 300 --seed 99 --numbers 3 --max-number 12 --min-target 10 --max-target 36 --out runs/n3s/val.jsonl
    cargo run --release -p apr-experiments --bin gen-data -- problems --count 8000 --seed 1 --numbers 3 --max-number 12 --min-target 10 --max-target 36 --exclude runs/n3s/val.jsonl --out runs/n3s/problems.jsonl
    cargo run --release -p apr-experiments --bin gen-data -- traces --solver apr --problems runs/n3s/problems.jsonl --seed 1 --out runs/n3s/apr.jsonl
    cargo run --release -p apr-experiments --bin train-sft -- --config experiments/configs/sft-tiny3-apr-30min.toml
    cargo run --release -p apr-experiments --bin rollout -- --model runs/n3s/sft-apr-30min/model --problems runs/n3s/val.jsonl --budget 5 --max-new-tokens 768 --out runs/n3s/r30-greedy-300.jsonl

# Training throughput next to the PyTorch baseline (needs python3 with torch).
sft-baseline config="experiments/configs/sft-tiny-apr.toml" steps="12":
    cargo build --release -p apr-experiments
    benches/baselines/sft_cpu.sh {{config}} {{steps}}

# Rollout passthrough: `just rollout --model runs/sft-tiny-apr/model --problems datasets/countdown-val/val.jsonl --out runs/rollout/apr.jsonl`.
rollout *ARGS:
    cargo run --release -p apr-experiments --bin rollout -- {{ARGS}}

# Engine decoding vs PyTorch + transformers generate (needs python3 with torch and transformers).
decode-baseline model="-" batches="1,8,64,256" new="128":
    cargo build --release -p apr-experiments
    benches/baselines/generate_cpu.sh {{model}} {{batches}} {{new}}

# The host decoder's matrix kernel vs PyTorch (MKL) and the gemm crate at the decode shapes (needs python3 with torch).
matmul-baseline rounds="3":
    benches/baselines/matmul_cpu.sh {{rounds}}

# GRPO passthrough: `just train-grpo --config run.toml` (see docs/rl.md).
train-grpo *ARGS:
    cargo run --release -p apr-experiments --bin train-grpo -- {{ARGS}}

# Evaluation passthrough: `just eval --model apr=runs/countdown-apr-rl/apr-grpo/model:apr --out runs/eval`.
eval *ARGS:
    cargo run --release -p apr-experiments --bin eval -- {{ARGS}}
