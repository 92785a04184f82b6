//! The training step's causal attention, forward and backward through
//! autodiff, at the `tiny` preset's training shape (one 1,063-token
//! sequence, 4 heads of 32): the CPU backend's fused operation
//! (`AprBackend::causal_attention`, the host kernels of `apr-kernels`)
//! against burn's own `attention` with a causal mask, the dense form that
//! builds the `t x t` matrix. Elements are query-key pairs.
//! `cargo bench -p apr-model --bench attention`.

use apr_model::init::SplitMix;
use apr_model::{AprBackend, CpuTrain};
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Tensor, TensorData, TensorPrimitive};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

type B = CpuTrain;
/// An attention form: q, k, v to the output.
type Form = fn([Tensor<B, 4>; 3]) -> Tensor<B, 4>;

const DIMS: [usize; 4] = [1, 4, 1063, 32];

fn inputs() -> [Tensor<B, 4>; 3] {
    let n: usize = DIMS.iter().product();
    let mut rng = SplitMix::new(1);
    let dev = Default::default();
    [0; 3].map(|_| {
        Tensor::<B, 4>::from_data(TensorData::new(rng.normal_vec(n, 1.0), DIMS), &dev)
            .require_grad()
    })
}

fn fused([q, k, v]: [Tensor<B, 4>; 3]) -> Tensor<B, 4> {
    Tensor::from_primitive(TensorPrimitive::Float(B::causal_attention(
        q.into_primitive().tensor(),
        k.into_primitive().tensor(),
        v.into_primitive().tensor(),
    )))
}

fn dense([q, k, v]: [Tensor<B, 4>; 3]) -> Tensor<B, 4> {
    let opts = AttentionModuleOptions {
        scale: None,
        softcap: None,
        is_causal: true,
    };
    attention(q, k, v, None, None, opts)
}

fn causal(c: &mut Criterion) {
    let t = DIMS[2];
    let mut g = c.benchmark_group("causal_attention_autodiff");
    g.throughput(Throughput::Elements((DIMS[1] * t * (t + 1) / 2) as u64));
    g.sample_size(10);
    let forms: [(&str, Form); 2] = [("fused host kernels", fused), ("burn dense", dense)];
    for (name, f) in forms {
        g.bench_function(format!("{name}/forward+backward/1x4x1063x32"), |b| {
            b.iter_batched(
                inputs,
                |x| {
                    let grads = f(x).sum().backward();
                    std::hint::black_box(grads);
                },
                criterion::BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, causal);
criterion_main!(benches);
