#!/usr/bin/env bash
# The host decoder's matrix kernel against PyTorch's (MKL) and the `gemm`
# crate's (faer) at the decode shapes of batch 64 (`small` and `paper`
# presets), two threads, run alternately ROUNDS times; prints the median
# GFLOP/s of each with the weight in cache ("warm") and with a different
# weight for each product ("cold", what decoding does). Usage:
#   benches/baselines/matmul_cpu.sh [ROUNDS]
# The three sides list their shapes separately (the kernel's in
# crates/apr-kernels/examples/matmul_gflops.rs); a shape one of them lacks
# shows as "-". Needs: python3 with torch; builds the kernel's example and
# benches/baselines/matmul_gemm (a project of its own) in release mode.
set -euo pipefail
rounds=${1:-3}
dir=$(mktemp -d)
cargo build --release --quiet -p apr-kernels --example matmul_gflops
test_bin=target/release/examples/matmul_gflops
cargo build --release --quiet --manifest-path benches/baselines/matmul_gemm/Cargo.toml
gemm_bin=benches/baselines/matmul_gemm/target/release/matmul-gemm
for r in $(seq "$rounds"); do
  "$test_bin" 2>&1 | grep GFLOP | grep -v peak |
    sed -E 's/^([0-9x]+): ([0-9.]+) GFLOP.*\(([0-9.]+) with.*/apr \1 \2 \3/' >>"$dir/all"
  python3 benches/baselines/matmul_torch.py 2 |
    sed -E 's/^([0-9x]+): warm ([0-9.]+) cold ([0-9.]+).*/torch \1 \2 \3/' >>"$dir/all"
  "$gemm_bin" 2 | sed -E 's/^([0-9x]+): warm ([0-9.]+) cold ([0-9.]+).*/gemm \1 \2 \3/' >>"$dir/all"
done
python3 - "$dir/all" <<'PY'
import collections, statistics, sys
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    who, shape, warm, cold = line.split()
    d[shape, who].append((float(warm), float(cold)))
shapes = list(dict.fromkeys(s for s, _ in d))
print("| m x k x n | apr warm | apr cold | torch (MKL) warm | torch cold | gemm warm | gemm cold |")
print("|---|---|---|---|---|---|---|")
for s in shapes:
    cells = []
    for who in ("apr", "torch", "gemm"):
        v = d.get((s, who))
        if not v:  # a shape one side does not time
            cells += ["-", "-"]
            continue
        cells += [f"{statistics.median(w for w, _ in v):.0f}", f"{statistics.median(c for _, c in v):.0f}"]
    print(f"| {s} | " + " | ".join(cells) + " |")
PY
rm -rf "$dir"
