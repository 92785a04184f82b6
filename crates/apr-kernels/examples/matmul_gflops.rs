//! The matrix kernel's GFLOP/s under the protocol the baselines share
//! (`benches/baselines/matmul_cpu.sh`, `matmul_torch.py`, `matmul_gemm`):
//! best of 7 x 40 products at the decode shapes of batch 64, with the
//! weight in cache and with a different weight for each product (what
//! decoding does), on rayon's threads and on one; then the machine's peak
//! (register-only fused multiply-adds).
//! `cargo run --release -p apr-kernels --example matmul_gflops`.

use apr_kernels::matmul::{matmul, Packed};
use pulp::{Arch, Simd, WithSimd};
use std::time::Instant;

fn best_of_7(mut f: impl FnMut()) -> f64 {
    (0..7)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}

fn main() {
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool");
    let reps = 40;
    for (m, k, n) in [
        (64, 512, 512),
        (64, 512, 1376),
        (64, 1376, 512),
        (6, 512, 1376),
        (64, 1024, 3072),
        (64, 2752, 1024),
    ] {
        let x: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let w: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        let p = Packed::new(&w, k, n);
        let mut out = vec![0.0; m * n];
        let warm = best_of_7(|| (0..reps).for_each(|_| matmul(&x, m, &p, &mut out, false)));
        let single = one
            .install(|| best_of_7(|| (0..reps).for_each(|_| matmul(&x, m, &p, &mut out, false))));
        let cold_w: Vec<Packed> = (0..reps)
            .map(|s| {
                let ws: Vec<f32> = w.iter().map(|v| v + s as f32).collect();
                Packed::new(&ws, k, n)
            })
            .collect();
        let cold = best_of_7(|| {
            cold_w
                .iter()
                .for_each(|p| matmul(&x, m, p, &mut out, false))
        });
        let flop = 2.0 * (m * k * n * reps) as f64;
        println!(
            "{m}x{k}x{n}: {:.1} GFLOP/s on rayon's threads ({:.1} with a different \
             weight each time), {:.1} on one",
            flop / warm / 1e9,
            flop / cold / 1e9,
            flop / single / 1e9
        );
    }
    peak();
}

/// Twelve independent chains of vector fused multiply-adds on registers
/// only (the kernel's tile has twelve accumulators), on one thread, then on
/// each of rayon's threads at once.
fn peak() {
    struct Chains(usize);
    impl WithSimd for Chains {
        type Output = f64;
        #[inline(always)]
        fn with_simd<S: Simd>(self, simd: S) -> f64 {
            let (a, b) = (simd.splat_f32s(0.9999), simd.splat_f32s(1e-4));
            let mut acc = [simd.splat_f32s(0.5); 12];
            for _ in 0..self.0 {
                for c in &mut acc {
                    *c = simd.mul_add_f32s(*c, a, b);
                }
            }
            std::hint::black_box(acc.map(|c| simd.reduce_sum_f32s(c)));
            (2 * 12 * S::F32_LANES * self.0) as f64
        }
    }
    let iters = 50_000_000;
    let t = Instant::now();
    let flop = Arch::new().dispatch(Chains(iters));
    let one = flop / t.elapsed().as_secs_f64() / 1e9;
    let t = Instant::now();
    let flop: f64 = rayon::broadcast(|_| Arch::new().dispatch(Chains(iters)))
        .iter()
        .sum();
    let all = flop / t.elapsed().as_secs_f64() / 1e9;
    println!(
        "peak: {one:.1} GFLOP/s on one thread, {all:.1} on {} at once",
        rayon::current_num_threads()
    );
}
