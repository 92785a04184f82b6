//! A Llama-style decoder in [burn], generic over the backend, with a KV
//! cache for batches of sequences of different lengths, presets (`tiny`,
//! `small`, `paper`), and checkpoints in the Hugging Face Llama layout.
//!
//! The CPU backend is burn's `flex` ([`Cpu`]); the CUDA backend is behind
//! the `cuda` feature.

pub mod backend;
pub mod cache;
pub mod checkpoint;
pub mod config;
mod device_cache;
pub mod error;
pub mod generate;
mod host_attention;
mod host_causal;
mod host_causal_shape;
mod host_causal_tiled;
pub mod host_decode;
mod host_math;
mod host_matmul;
pub mod init;
mod interop;
mod kv16;
pub mod model;
#[cfg(test)]
mod test_util;
mod tokenizer_file;

pub use backend::{attention, logprobs, AprBackend};
pub use backend::{Cpu, CpuTrain};
pub use cache::{KvCache, Logits};
pub use config::ModelConfig;
pub use error::{Error, Result};
pub use host_decode::HostDecoder;
pub use model::Llama;
