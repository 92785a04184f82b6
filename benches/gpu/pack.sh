#!/usr/bin/env bash
# Builds the CUDA binaries that benches/gpu/run.sh needs, strips them and
# packs them into target/gpu-bins.tar.xz: the device tool carries at most
# 64 MiB, and the stripped binaries are larger than that together. Carry
# `target/gpu-bins.tar.xz`; run.sh unpacks it into target/release when the
# binaries are not there. Usage: benches/gpu/pack.sh
set -euo pipefail
target=${CARGO_TARGET_DIR:-target}
cargo build --release --features cuda -p apr-experiments \
  --bin decode-bench --bin train-sft --bin gen-data
dir=$(mktemp -d)
for b in decode-bench train-sft gen-data; do
  cp "$target/release/$b" "$dir/"
  strip "$dir/$b"
done
mkdir -p target
tar -C "$dir" -cf - decode-bench train-sft gen-data | xz -6 -T2 >target/gpu-bins.tar.xz.tmp
mv target/gpu-bins.tar.xz.tmp target/gpu-bins.tar.xz
ls -l "$dir" target/gpu-bins.tar.xz
rm -rf "$dir"
