//! The backends this toolkit builds with, and [`AprBackend`]: what the
//! model needs of one beyond burn's [`Backend`] (causal attention with a
//! fast backward, the SwiGLU gate, target log-probabilities), implemented
//! for the CPU and CUDA backends and their autodiff wrappers in
//! [`attention`], with the fused operations in `swiglu` and
//! [`logprobs`].

pub mod attention;
pub mod logprobs;
mod swiglu;

use burn::tensor::backend::Backend;
use burn::tensor::ops::{FloatTensor, IntTensor};

/// burn's portable CPU backend (`flex`), f32.
pub type Cpu = burn::backend::Flex;

/// The CPU backend with automatic differentiation, for training.
pub type CpuTrain = burn::backend::Autodiff<Cpu>;

/// burn's CUDA backend, f32 (feature `cuda`).
#[cfg(feature = "cuda")]
pub type Cuda = burn::backend::Cuda<f32, i32>;

/// The CUDA backend with automatic differentiation (feature `cuda`).
#[cfg(feature = "cuda")]
pub type CudaTrain = burn::backend::Autodiff<Cuda>;

/// A burn backend the model runs on: [`Backend`] plus causal attention
/// with a fast backward pass under autodiff.
pub trait AprBackend: Backend {
    /// Whether cached decoding should, by default, keep the KV cache in
    /// host memory and run on the host ([`crate::KvKind::default_for`],
    /// [`crate::HostDecoder`]) rather than through this backend's ops:
    /// true for the CPU backend, whose tensors live on the host anyway.
    const HOST_DECODE: bool = false;

    /// Whether [`Self::causal_attention`] under autodiff runs on host
    /// kernels (a forward that keeps each query's log-sum-exp and a
    /// backward that rebuilds the probabilities from it) rather than
    /// burn's ops keeping the probabilities: true for the CPU backend.
    const HOST_ATTENTION_BACKWARD: bool = false;

    /// Whether [`Self::swiglu`] under autodiff is one node with host
    /// kernels rather than burn's ops: true for the CPU backend.
    const HOST_SWIGLU_BACKWARD: bool = false;

    /// Whether [`Self::token_logprobs`] under autodiff is one node with
    /// host kernels rather than burn's ops: true for the CPU backend.
    const HOST_LOGPROBS_BACKWARD: bool = false;

    /// Causal self-attention: `q`, `k`, `v` `[batch, heads, t, head_dim]`
    /// (keys and values already repeated to the query heads), scale
    /// `1/sqrt(head_dim)`, query `i` sees keys `0..=i`. The default is the
    /// backend's own attention.
    fn causal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        attention::backend_causal_attention::<Self>(q, k, v)
    }

    /// The SwiGLU gate `silu(g) * u`, element-wise (`g`, `u` of one shape).
    /// The default is the backend's own ops (the CPU's host form: the
    /// `swiglu` module).
    fn swiglu(g: FloatTensor<Self>, u: FloatTensor<Self>) -> FloatTensor<Self> {
        swiglu::burn_swiglu::<Self>(g, u)
    }

    /// Log-probabilities of targets: `logits` `[b, t, vocab]`, `targets`
    /// `[b, t, 1]`, the result `[b, t, 1]`. The default is burn's
    /// log-softmax and gather; see [`crate::logprobs`].
    fn token_logprobs(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self> {
        logprobs::burn_logprobs::<Self>(logits, targets)
    }
}
