//! Causal self-attention with a hand-written backward pass.
//!
//! burn 0.21's autodiff backend differentiates attention through its generic
//! fallback: a materialised causal mask of `[batch, heads, t, t]` booleans,
//! two `mask_fill`s, a NaN-safe softmax of eight tensor ops, each one a node
//! that keeps its own `[batch, heads, t, t]` intermediate. On the CPU that
//! made attention the larger part of a training step for the `tiny` preset.
//!
//! [`AprBackend::causal_attention`] replaces it. The forward pass is the
//! backend's own attention kernel (for `flex`, a tiled flash attention that
//! never holds the `t x t` scores); the backward pass recomputes the
//! probabilities once and applies the standard formulas
//!
//! ```text
//! S = scale * Q Kᵀ + causal,  P = softmax(S),  O = P V
//! dV = Pᵀ dO,  dP = dO Vᵀ,  dS = P ∘ (dP − rowsum(dO ∘ O)),
//! dQ = scale * dS K,  dK = scale * dSᵀ Q
//! ```
//!
//! keeping only `Q`, `K`, `V` and `O` between the passes.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::Autodiff;
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::ops::{AttentionModuleOptions, FloatTensor};
use burn::tensor::{Tensor, TensorData, TensorPrimitive};

/// A burn backend the model runs on: [`Backend`] plus causal attention
/// with a fast backward pass under autodiff.
pub trait AprBackend: Backend {
    /// Whether cached decoding should run on the host
    /// ([`crate::HostDecoder`]) rather than through this backend's ops:
    /// true for the CPU backend, whose tensors live on the host anyway.
    const HOST_DECODE: bool = false;

    /// Causal self-attention: `q`, `k`, `v` `[batch, heads, t, head_dim]`
    /// (keys and values already repeated to the query heads), scale
    /// `1/sqrt(head_dim)`, query `i` sees keys `0..=i`. The default is the
    /// backend's own attention.
    fn causal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let opts = AttentionModuleOptions {
            scale: None,
            softcap: None,
            is_causal: true,
        };
        Self::attention(q, k, v, None, None, opts)
    }
}

impl AprBackend for burn::backend::Flex {
    const HOST_DECODE: bool = true;
}

#[cfg(feature = "cuda")]
impl AprBackend for burn::backend::Cuda {}

#[derive(Debug)]
struct CausalAttention;

impl<B: Backend> Backward<B, 3> for CausalAttention {
    /// `Q`, `K`, `V`, the output `O` and the probabilities `P`.
    type State = [FloatTensor<B>; 5];

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_q, node_k, node_v] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let [q, k, v, o, p] = ops.state;
        let [dq, dk, dv] = attention_backward::<B>(q, k, v, o, p, grad);
        for (node, g) in [(node_q, dq), (node_k, dk), (node_v, dv)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, g);
            }
        }
    }
}

impl<B: AprBackend, C: CheckpointStrategy> AprBackend for Autodiff<B, C> {
    const HOST_DECODE: bool = B::HOST_DECODE;

    fn causal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let nodes = [q.node.clone(), k.node.clone(), v.node.clone()];
        match CausalAttention
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (qp, kp, vp) = (q.primitive, k.primitive, v.primitive);
                let p = probabilities(wrap::<B>(qp.clone()), wrap(kp.clone()));
                let o = unwrap(p.clone().matmul(wrap(vp.clone())));
                prep.finish([qp, kp, vp, o.clone(), unwrap(p)], o)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::causal_attention(q.primitive, k.primitive, v.primitive))
            }
        }
    }
}

fn wrap<B: Backend>(p: FloatTensor<B>) -> Tensor<B, 4> {
    Tensor::from_primitive(TensorPrimitive::Float(p))
}

fn unwrap<B: Backend>(t: Tensor<B, 4>) -> FloatTensor<B> {
    t.into_primitive().tensor()
}

/// Additive causal bias `[1, 1, tq, tk]`: 0 where query `i` may see key `j`
/// (`j <= i + tk - tq`), `-inf` elsewhere.
pub(crate) fn causal_bias<B: Backend>(tq: usize, tk: usize, device: &B::Device) -> Tensor<B, 4> {
    let off = tk - tq;
    let mut bias = Vec::with_capacity(tq * tk);
    for i in 0..tq {
        bias.extend((0..tk).map(|j| {
            if j <= i + off {
                0.0f32
            } else {
                f32::NEG_INFINITY
            }
        }));
    }
    Tensor::from_data(TensorData::new(bias, [1, 1, tq, tk]), device)
}

/// Causal attention probabilities `softmax(scale * Q Kᵀ + causal)`.
fn probabilities<B: Backend>(q: Tensor<B, 4>, k: Tensor<B, 4>) -> Tensor<B, 4> {
    let [b, h, tq, d] = q.dims();
    let tk = k.dims()[2];
    let scale = 1.0 / (d as f64).sqrt();
    // The bias is added as one shared row of `tq * tk`, the broadcast
    // shape flex runs on its SIMD path.
    let bias = causal_bias::<B>(tq, tk, &q.device()).reshape([1, tq * tk]);
    let s = q.mul_scalar(scale).matmul(k.swap_dims(2, 3));
    let s = (s.reshape([b * h, tq * tk]) + bias).reshape([b, h, tq, tk]);
    softmax(s, 3)
}

/// Gradients of causal attention with respect to `q`, `k`, `v`.
fn attention_backward<B: Backend>(
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    o: FloatTensor<B>,
    p: FloatTensor<B>,
    grad: FloatTensor<B>,
) -> [FloatTensor<B>; 3] {
    let (q, k, v) = (wrap::<B>(q), wrap::<B>(k), wrap::<B>(v));
    let (o, p, go) = (wrap::<B>(o), wrap::<B>(p), wrap::<B>(grad));
    let d = q.dims()[3];
    let scale = 1.0 / (d as f64).sqrt();
    let dv = p.clone().swap_dims(2, 3).matmul(go.clone());
    let dp = go.clone().matmul(v.swap_dims(2, 3));
    let row = (go * o).sum_dim(3);
    let ds = p * (dp - row);
    let dq = ds.clone().matmul(k).mul_scalar(scale);
    let dk = ds.swap_dims(2, 3).matmul(q).mul_scalar(scale);
    [unwrap(dq), unwrap(dk), unwrap(dv)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Cpu, CpuTrain};
    use burn::tensor::module::attention;

    fn rand4(seed: u64, shape: [usize; 4]) -> Vec<f32> {
        let mut rng = crate::init::SplitMix::new(seed);
        rng.normal_vec(shape.iter().product(), 1.0)
    }

    #[test]
    fn bias_is_causal_with_offset() {
        let b = causal_bias::<Cpu>(2, 3, &Default::default());
        let v: Vec<f32> = b.into_data().to_vec().unwrap();
        let n = f32::NEG_INFINITY;
        assert_eq!(v, vec![0.0, 0.0, n, 0.0, 0.0, 0.0]);
    }

    /// Output and gradients equal those of burn's generic attention
    /// differentiated by autodiff (the fallback), to 1e-4.
    #[test]
    fn matches_burn_fallback_forward_and_backward() {
        let dev = Default::default();
        let shape = [2, 3, 37, 8];
        let mk = |seed| {
            Tensor::<CpuTrain, 4>::from_data(TensorData::new(rand4(seed, shape), shape), &dev)
                .require_grad()
        };
        let (q, k, v) = (mk(1), mk(2), mk(3));
        let w = Tensor::<CpuTrain, 4>::from_data(TensorData::new(rand4(4, shape), shape), &dev);
        let ours = wrap::<CpuTrain>(CpuTrain::causal_attention(
            unwrap(q.clone()),
            unwrap(k.clone()),
            unwrap(v.clone()),
        ));
        let opts = AttentionModuleOptions {
            scale: None,
            softcap: None,
            is_causal: true,
        };
        let theirs = attention(q.clone(), k.clone(), v.clone(), None, None, opts);
        let close = |a: Tensor<Cpu, 4>, b: Tensor<Cpu, 4>| {
            let (a, b): (Vec<f32>, Vec<f32>) = (
                a.into_data().to_vec().unwrap(),
                b.into_data().to_vec().unwrap(),
            );
            let worst = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max);
            assert!(worst < 1e-4, "max difference {worst}");
        };
        close(ours.clone().inner(), theirs.clone().inner());
        let g1 = (ours * w.clone()).sum().backward();
        let g2 = (theirs * w).sum().backward();
        for x in [&q, &k, &v] {
            close(x.grad(&g1).unwrap(), x.grad(&g2).unwrap());
        }
    }
}
