"""PyTorch's CPU matrix multiply (`x @ w`, f32) at the decode shapes and with
the protocol of `apr-kernels`' `matmul_gflops` example: best of 7 x 40 products,
once with one weight (warm caches) and once with 40 different weights (each
read from memory, as decoding does). Prints `MxKxN: warm W cold C GFLOP/s`.
Usage: python3 benches/baselines/matmul_torch.py [THREADS]"""
import sys
import time

import torch

SHAPES = [(64, 512, 512), (64, 512, 1376), (64, 1376, 512), (6, 512, 1376),
          (64, 1024, 3072), (64, 2752, 1024)]

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
torch.manual_seed(0)
for m, k, n in SHAPES:
    x = torch.randn(m, k)
    ws = [torch.randn(k, n) for _ in range(40)]
    warm = cold = float("inf")
    for _ in range(7):
        t = time.perf_counter()
        for _ in range(40):
            x @ ws[0]
        warm = min(warm, time.perf_counter() - t)
        t = time.perf_counter()
        for w in ws:
            x @ w
        cold = min(cold, time.perf_counter() - t)
    flop = 2 * m * k * n * 40
    print(f"{m}x{k}x{n}: warm {flop / warm / 1e9:.1f} cold {flop / cold / 1e9:.1f} GFLOP/s")
