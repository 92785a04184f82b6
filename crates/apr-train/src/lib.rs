//! Training of APR and SoS+ models: supervised training on solver traces
//! (SFT, [`sft`]) and reinforcement learning on the rollout engine's
//! samples (GRPO, [`grpo_train`], with its arithmetic in [`grpo`]).
//!
//! Departures from the paper: the `tiny` preset and CPU-sized defaults
//! (learning rate, batch) are ours; the paper's SFT used batch 256 and lr
//! 5e-5 on 128 TPU cores.

pub mod config;
pub mod data;
pub mod error;
mod floats;
pub mod grads;
pub mod grpo;
pub mod grpo_config;
pub mod grpo_train;
pub mod grpo_update;
pub mod guard;
pub mod metrics;
mod parallel;
pub mod run_dir;
pub mod run_loop;
/// SVG plots (re-exported from `apr-plot`).
pub use apr_plot as plot;
pub mod sample;
pub mod sft;
pub mod snapshots;
pub mod state;
#[cfg(test)]
mod test_model;

pub use config::{SftConfig, TraceKind};
pub use error::{Error, Result};
pub use grpo_config::{GrpoConfig, GrpoOptim};
pub use grpo_train::{train_grpo, train_grpo_with, GrpoSummary};
pub use sft::{train, RunOptions, SftSummary};
