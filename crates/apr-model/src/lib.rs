//! A Llama-style decoder in [burn], generic over the backend, with a KV
//! cache for batches of sequences of different lengths, presets (`tiny`,
//! `small`, `paper`), and checkpoints in the Hugging Face Llama layout.
//!
//! The CPU backend is burn's `flex` ([`Cpu`]); the CUDA backend is behind
//! the `cuda` feature.

pub mod average;
pub mod backend;
pub mod cache;
pub mod checkpoint;
pub mod config;
mod device_cache;
pub mod error;
pub mod generate;
pub mod host_decode;
pub mod init;
mod interop;
pub mod model;
#[cfg(test)]
mod test_util;
mod tokenizer_file;

pub use backend::{attention, logprobs, AprBackend};
pub use backend::{Cpu, CpuTrain};
pub use cache::{KvCache, KvElem, KvKind, Logits};
pub use config::ModelConfig;
pub use error::{Error, Result};
pub use host_decode::HostDecoder;
pub use model::Llama;
