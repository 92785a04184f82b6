#!/usr/bin/env bash
# End-to-end throughput of `gen-data` on one thread (JSON Lines written,
# fsynced and renamed), against the reference code's recorded speed on one
# core (apr-reference.md section 8: 172 problems/s, 1,610 SoS+ traces/s,
# 531 APR traces/s). Usage:
#   benches/baselines/gen_data_e2e.sh [DIR] [RUNS] [COUNT] [OTHER_GEN_DATA]
# DIR: where the files are written (default /dev/shm/gen-data-e2e, memory;
# give a folder on a disk to include the device). With OTHER_GEN_DATA (a
# second gen-data binary, for example one built from an older commit),
# every run alternates the two binaries on the same input, so that both
# see the same machine load. The output file is removed before each run.
# Needs: cargo build --release -p apr-experiments --bin gen-data.
set -euo pipefail
dir=${1:-/dev/shm/gen-data-e2e}
runs=${2:-3}
count=${3:-20000}
other=${4:-}
bin=target/release/gen-data
mkdir -p "$dir"
"$bin" problems --count "$count" --seed 2 --threads 1 --out "$dir/p.jsonl" >/dev/null 2>&1
rate() { grep -o '[0-9]*/s on 1 thread' | grep -o '^[0-9]*'; }
one() { # BINARY STAGE -> records/s
  local b=$1 stage=$2 out
  case $stage in
    problems) out=$dir/q.jsonl; rm -f "$out"
      "$b" problems --count "$count" --seed 2 --threads 1 --out "$out" 2>&1 | rate ;;
    sosp|apr) out=$dir/$stage.jsonl; rm -f "$out"
      "$b" traces --solver "$stage" --problems "$dir/p.jsonl" --seed 2 --threads 1 --out "$out" 2>&1 | rate ;;
  esac
}
declare -A ref=([problems]=172 [sosp]=1610 [apr]=531)
echo "| stage | binary | records/s, each run | x reference |"
echo "|---|---|---|---|"
for stage in problems sosp apr; do
  declare -a mine=() theirs=()
  for _ in $(seq "$runs"); do
    mine+=("$(one "$bin" "$stage")")
    [ -n "$other" ] && theirs+=("$(one "$other" "$stage")")
  done
  for who in mine theirs; do
    declare -n v=$who
    [ ${#v[@]} -eq 0 ] && continue
    name=$([ "$who" = mine ] && echo "$bin" || echo "$other")
    xs=$(for r in "${v[@]}"; do awk -v r="$r" -v f="${ref[$stage]}" 'BEGIN { printf "%.0fx ", r / f }'; done)
    echo "| $stage | $name | $(printf '%s ' "${v[@]}") | $xs |"
  done
done
rm -f "$dir"/q.jsonl "$dir"/sosp.jsonl "$dir"/apr.jsonl
