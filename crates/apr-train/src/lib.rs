//! Training of APR and SoS+ models: supervised training on solver traces
//! (SFT). GRPO comes with the rollout engine.
//!
//! Departures from the paper: the `tiny` preset and CPU-sized defaults
//! (learning rate, batch) are ours; the paper's SFT used batch 256 and lr
//! 5e-5 on 128 TPU cores.

pub mod config;
pub mod data;
pub mod error;
pub mod grads;
pub mod grpo;
pub mod plot;
pub mod sample;
pub mod sft;

pub use config::{SftConfig, TraceKind};
pub use error::{Error, Result};
pub use sft::{train, RunOptions, SftSummary};
