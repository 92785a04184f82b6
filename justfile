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
