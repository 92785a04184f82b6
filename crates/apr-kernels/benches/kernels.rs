//! Throughput of the host kernels at the shapes the model runs them at:
//! the matrix product at the decode shapes of batch 64 and 6 (`small` and
//! `paper` presets; elements = floating-point operations, so criterion's
//! elements/s read as FLOP/s), and causal attention forward and backward
//! at the `tiny` preset's training shape in its register-tiled and
//! pairwise forms (elements = query-key pairs).
//! `cargo bench -p apr-kernels`.

use apr_kernels::causal::{backward_in, forward_in, Form};
use apr_kernels::matmul::{matmul, Packed};
use apr_kernels::CausalShape;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn values(n: usize, modulus: usize) -> Vec<f32> {
    (0..n).map(|i| (i % modulus) as f32 * 0.1 - 0.2).collect()
}

fn matmuls(c: &mut Criterion) {
    let mut g = c.benchmark_group("matmul");
    for (m, k, n) in [
        (64, 512, 512),
        (64, 512, 1376),
        (64, 1376, 512),
        (6, 512, 1376),
        (64, 1024, 3072),
        (64, 2752, 1024),
    ] {
        let x = values(m * k, 7);
        let p = Packed::new(&values(k * n, 5), k, n);
        let mut out = vec![0.0; m * n];
        g.throughput(Throughput::Elements(2 * (m * k * n) as u64));
        g.bench_function(BenchmarkId::from_parameter(format!("{m}x{k}x{n}")), |b| {
            b.iter(|| matmul(&x, m, &p, &mut out, false))
        });
    }
    g.finish();
}

fn causal(c: &mut Criterion) {
    // `tiny`: 4 heads of 32, a 2,048-token batch as 4 rows of 512.
    let (batch, heads, t, d) = (4, 4, 512, 32);
    let s = CausalShape::token_major([batch, t, heads, d]);
    let n = batch * heads * t * d;
    let (q, k, v, go) = (values(n, 7), values(n, 5), values(n, 3), values(n, 11));
    let pairs = (batch * heads * t * (t + 1) / 2) as u64;
    let mut g = c.benchmark_group("causal_attention");
    g.throughput(Throughput::Elements(pairs));
    for (name, form) in [("tiled", Form::Tiled), ("pairwise", Form::Pairwise)] {
        g.bench_function(format!("forward/{name}/4x512x4x32"), |b| {
            b.iter(|| forward_in(form, s, &q, &k, &v))
        });
        let (o, lse) = forward_in(form, s, &q, &k, &v);
        g.bench_function(format!("backward/{name}/4x512x4x32"), |b| {
            b.iter(|| backward_in(form, s, &q, &k, &v, &o, &lse, &go))
        });
    }
    g.finish();
}

criterion_group!(benches, matmuls, causal);
criterion_main!(benches);
