//! Host kernels of the APR model, without burn: `&[f32]` in and out, SIMD
//! through `pulp` (chosen at run time for the machine), threads through
//! `rayon`. `apr-model` calls them on the CPU backend for decoding (the
//! host decoder), for the training step's causal attention and fused
//! operations, and for the bfloat16 KV cache.
//!
//! - [`matmul`]: row-major products against packed weights.
//! - [`attention`]: one query row against cached keys and values (f32 or
//!   bfloat16 words), the decode step.
//! - [`causal`]: causal self-attention forward and backward for training
//!   (FlashAttention's recipe: no `t x t` matrix), in pairwise and
//!   register-tiled forms.
//! - [`math`]: the vector exponential, SiLU-gated products and their
//!   backward.
//! - [`kv16`]: packing f32 rows into bfloat16 words and back.
//! - [`rng`]: the seeded generator for weights, sampling and test inputs.
//! - [`arch`]: the decoder's architecture, the one description both the
//!   burn model and the host decoder are built from.
//! - [`kv`]: the KV cache in host memory, f32 or bfloat16.
//! - [`decoder`]: cached decoding of a whole model on the host.

pub mod arch;
pub mod attention;
pub mod causal;
mod causal_shape;
mod causal_tiled;
pub mod decoder;
pub mod error;
pub mod kv;
pub mod kv16;
pub mod math;
pub mod matmul;
pub mod rng;

pub use arch::LlamaArch;
pub use causal_shape::{CausalShape, Rows};
pub use error::{Error, Result};
