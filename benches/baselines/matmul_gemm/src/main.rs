//! `out[m, n] = x[m, k] · w[k, n]` (row-major f32) through the `gemm` crate
//! on two rayon threads, at the shapes and with the protocol of
//! `apr-kernels`' `matmul_gflops` example: best of 7 x 40 products, once with
//! one weight (warm caches) and once with 40 different weights (each read
//! from memory, as decoding does). Prints `MxKxN: warm W cold C GFLOP/s`.

use gemm::{gemm, Parallelism};

const SHAPES: [(usize, usize, usize); 6] = [
    (64, 512, 512),
    (64, 512, 1376),
    (64, 1376, 512),
    (6, 512, 1376),
    (64, 1024, 3072),
    (64, 2752, 1024),
];

fn main() {
    let threads = std::env::args()
        .nth(1)
        .and_then(|t| t.parse().ok())
        .unwrap_or(2);
    let par = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    for (m, k, n) in SHAPES {
        let x: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let ws: Vec<Vec<f32>> = (0..40)
            .map(|s| {
                (0..k * n)
                    .map(|i| (i % 5) as f32 * 0.1 + s as f32)
                    .collect()
            })
            .collect();
        let mut out = vec![0.0f32; m * n];
        let mut run = |w: &[f32]| {
            // SAFETY: the pointers and strides describe `out` ([m, n]), `x`
            // ([m, k]) and `w` ([k, n]), all row-major, owned and alive; `out`
            // does not alias the inputs.
            unsafe {
                gemm(
                    m,
                    n,
                    k,
                    out.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    x.as_ptr(),
                    1,
                    k as isize,
                    w.as_ptr(),
                    1,
                    n as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    par,
                );
            }
        };
        let (mut warm, mut cold) = (f64::MAX, f64::MAX);
        for _ in 0..7 {
            let t = std::time::Instant::now();
            for _ in 0..40 {
                run(&ws[0]);
            }
            warm = warm.min(t.elapsed().as_secs_f64());
            let t = std::time::Instant::now();
            for w in &ws {
                run(w);
            }
            cold = cold.min(t.elapsed().as_secs_f64());
        }
        let flop = 2.0 * (m * k * n * 40) as f64;
        println!(
            "{m}x{k}x{n}: warm {:.1} cold {:.1} GFLOP/s",
            flop / warm / 1e9,
            flop / cold / 1e9
        );
    }
}
