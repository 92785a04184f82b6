//! Causal self-attention with a hand-written backward pass.
//!
//! burn 0.21's autodiff backend differentiates attention through its generic
//! fallback: a materialised causal mask of `[batch, heads, t, t]` booleans,
//! two `mask_fill`s, a NaN-safe softmax of eight tensor ops, each one a node
//! that keeps its own `[batch, heads, t, t]` intermediate. On the CPU that
//! made attention the larger part of a training step for the `tiny` preset.
//!
//! [`AprBackend::causal_attention`] replaces it with one autodiff node,
//! in one of two forms:
//!
//! - on a backend whose tensors live on the host (the CPU,
//!   [`AprBackend::HOST_ATTENTION_BACKWARD`]), `crate::host_causal`'s
//!   kernels: the forward keeps only the output and each query's
//!   log-sum-exp, the backward rebuilds the probabilities from them;
//!   neither holds a `t x t` matrix, and both visit only the pairs a
//!   query may see;
//! - elsewhere (CUDA), burn's ops: the forward computes the probabilities
//!   once (an additive causal bias, softmax) and keeps them, and the
//!   backward applies the closed form
//!
//! ```text
//! S = scale * Q Kᵀ + causal,  P = softmax(S),  O = P V
//! dV = Pᵀ dO,  dP = dO Vᵀ,  dS = P ∘ (dP − rowsum(dO ∘ O)),
//! dQ = scale * dS K,  dK = scale * dSᵀ Q
//! ```
//!
//! Without gradient tracking, the CPU backend runs the host kernels'
//! forward and other backends their own attention. The host kernels read
//! `q`, `k`, `v` in the projections' `[batch, t, heads, head_dim]` order,
//! so the head transposes of the model cost no copies (see
//! `token_major`).
//!
//! The same trait carries two more fused operations with host forms on the
//! CPU: the SwiGLU gate ([`AprBackend::swiglu`], `super::swiglu`) and the
//! log-probabilities of target tokens ([`AprBackend::token_logprobs`],
//! [`super::logprobs`]).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::Autodiff;
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::ops::{AttentionModuleOptions, FloatTensor, IntTensor};
use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};
use std::sync::Arc;

use super::AprBackend;
use crate::interop::host_values;
use apr_kernels::causal as host_causal;
use apr_kernels::CausalShape;

/// The backend's own causal attention.
pub(crate) fn backend_causal_attention<B: Backend>(
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
) -> FloatTensor<B> {
    let opts = AttentionModuleOptions {
        scale: None,
        softcap: None,
        is_causal: true,
    };
    B::attention(q, k, v, None, None, opts)
}

impl AprBackend for burn::backend::Flex {
    const HOST_DECODE: bool = true;
    const HOST_ATTENTION_BACKWARD: bool = true;
    const HOST_SWIGLU_BACKWARD: bool = true;
    const HOST_LOGPROBS_BACKWARD: bool = true;

    /// The host kernel's forward for f32 self-attention (only the causal
    /// half of the pairs, no `t x t` tensor): validation losses, the
    /// reference model's log-probabilities run through it.
    /// Other inputs go to flex's own attention.
    fn causal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        match host_inputs::<Self>(&q, &k, &v) {
            Some((dims, device, hq, hk, hv)) => {
                let (o, _) = host_causal::forward(token_major(dims), &hq, &hk, &hv);
                from_host::<Self>(o, dims, &device)
            }
            None => backend_causal_attention::<Self>(q, k, v),
        }
    }

    /// The host kernel for f32 inputs (the vector exponential), else
    /// flex's ops.
    fn swiglu(g: FloatTensor<Self>, u: FloatTensor<Self>) -> FloatTensor<Self> {
        super::swiglu::flex_swiglu::<Self>(g, u)
    }

    /// The host kernel for f32 logits, else burn's ops.
    fn token_logprobs(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self> {
        super::logprobs::flex_logprobs::<Self>(logits, targets)
    }
}

#[cfg(feature = "cuda")]
impl AprBackend for burn::backend::Cuda {}

#[derive(Debug)]
struct CausalAttention;

/// What the backward pass keeps.
#[derive(Debug, Clone)]
enum Saved<B: Backend> {
    /// `Q`, `K`, `V`, the output `O` and the probabilities `P` (burn ops).
    Dense([FloatTensor<B>; 5]),
    /// The host kernels' inputs, output and log-sum-exp.
    Host(Arc<HostSaved<B>>),
}

/// Host copies of a forward pass, for tensors `[batch, heads, t,
/// head_dim]`, in [`token_major`] order.
#[derive(Debug)]
struct HostSaved<B: Backend> {
    dims: [usize; 4],
    device: B::Device,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    o: Vec<f32>,
    lse: Vec<f32>,
}

impl<B: Backend> Backward<B, 3> for CausalAttention {
    type State = Saved<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_q, node_k, node_v] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let [dq, dk, dv] = match ops.state {
            Saved::Dense([q, k, v, o, p]) => attention_backward::<B>(q, k, v, o, p, grad),
            Saved::Host(h) => host_backward(&h, grad),
        };
        for (node, g) in [(node_q, dq), (node_k, dk), (node_v, dv)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, g);
            }
        }
    }
}

/// The host kernels' view of `[batch, heads, t, head_dim]` tensors: their
/// values read in `[batch, t, heads, head_dim]` order.
///
/// The model builds `q`, `k` and `v` as `[batch, t, heads, head_dim]`
/// (the projections' layout) and hands them over with the two middle axes
/// swapped, a strided view; swapping back gives contiguous memory, read
/// with one copy, where reading the view as it is walked it element by
/// element (about a tenth of a training step). The output goes back the
/// same way: contiguous `[batch, t, heads, head_dim]` values, viewed with
/// the axes swapped, which the model swaps back and reshapes for free.
fn token_major(dims: [usize; 4]) -> CausalShape {
    let [b, h, t, d] = dims;
    CausalShape::token_major([b, t, h, d])
}

/// A `[batch, heads, t, head_dim]` tensor from values in `[batch, t, heads,
/// head_dim]` order (see [`token_major`]).
fn from_host<B: Backend>(v: Vec<f32>, dims: [usize; 4], device: &B::Device) -> FloatTensor<B> {
    let [b, h, t, d] = dims;
    let x = Tensor::<B, 4>::from_data(TensorData::new(v, [b, t, h, d]), device);
    unwrap(x.swap_dims(1, 2))
}

/// The values of a `[batch, heads, t, head_dim]` tensor in `[batch, t,
/// heads, head_dim]` order (see [`token_major`]).
fn host_tokens<B: Backend>(t: &FloatTensor<B>) -> Option<Vec<f32>> {
    host_values(wrap::<B>(t.clone()).swap_dims(1, 2)).ok()
}

/// The dims, device and host copies (in [`token_major`] order) of `q`, `k`,
/// `v` when they are f32 self-attention inputs (one shape).
#[allow(clippy::type_complexity)]
fn host_inputs<B: Backend>(
    q: &FloatTensor<B>,
    k: &FloatTensor<B>,
    v: &FloatTensor<B>,
) -> Option<([usize; 4], B::Device, Vec<f32>, Vec<f32>, Vec<f32>)> {
    let layout = |t: &FloatTensor<B>| {
        let t = wrap::<B>(t.clone());
        (t.dims(), t.dtype())
    };
    let (dims, dtype) = layout(q);
    if dtype != DType::F32 || layout(k) != (dims, dtype) || layout(v) != (dims, dtype) {
        return None;
    }
    let device = wrap::<B>(q.clone()).device();
    Some((
        dims,
        device,
        host_tokens::<B>(q)?,
        host_tokens::<B>(k)?,
        host_tokens::<B>(v)?,
    ))
}

/// The host forward pass, when the inputs are f32 self-attention
/// (`q`, `k`, `v` of one shape).
fn host_forward<B: Backend>(
    q: &FloatTensor<B>,
    k: &FloatTensor<B>,
    v: &FloatTensor<B>,
) -> Option<(HostSaved<B>, FloatTensor<B>)> {
    let (dims, device, q, k, v) = host_inputs::<B>(q, k, v)?;
    let (o, lse) = host_causal::forward(token_major(dims), &q, &k, &v);
    let out = from_host::<B>(o.clone(), dims, &device);
    Some((
        HostSaved {
            dims,
            device,
            q,
            k,
            v,
            o,
            lse,
        },
        out,
    ))
}

fn host_backward<B: Backend>(h: &HostSaved<B>, grad: FloatTensor<B>) -> [FloatTensor<B>; 3] {
    let go = host_tokens::<B>(&grad).unwrap_or_default();
    let shape = token_major(h.dims);
    let grads = host_causal::backward(shape, &h.q, &h.k, &h.v, &h.o, &h.lse, &go);
    grads.map(|g| from_host::<B>(g, h.dims, &h.device))
}

impl<B: AprBackend, C: CheckpointStrategy> AprBackend for Autodiff<B, C> {
    const HOST_DECODE: bool = B::HOST_DECODE;
    const HOST_ATTENTION_BACKWARD: bool = B::HOST_ATTENTION_BACKWARD;
    const HOST_SWIGLU_BACKWARD: bool = B::HOST_SWIGLU_BACKWARD;
    const HOST_LOGPROBS_BACKWARD: bool = B::HOST_LOGPROBS_BACKWARD;

    fn swiglu(g: FloatTensor<Self>, u: FloatTensor<Self>) -> FloatTensor<Self> {
        super::swiglu::autodiff_swiglu::<B, C>(g, u)
    }

    fn token_logprobs(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self> {
        super::logprobs::autodiff_logprobs::<B, C>(logits, targets)
    }

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
                if B::HOST_ATTENTION_BACKWARD {
                    if let Some((saved, o)) = host_forward::<B>(&qp, &kp, &vp) {
                        return prep.finish(Saved::Host(Arc::new(saved)), o);
                    }
                }
                let p = probabilities(wrap::<B>(qp.clone()), wrap(kp.clone()));
                let o = unwrap(p.clone().matmul(wrap(vp.clone())));
                prep.finish(Saved::Dense([qp, kp, vp, o.clone(), unwrap(p)]), o)
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
mod tests;
