//! # apr-experiments
//!
//! The library behind the experiment binaries in `experiments/src/bin/`:
//! each binary parses its arguments and calls one function here.

mod chunked;
pub mod decode_bench;
pub mod device;
pub mod error;
pub mod eval_cli;
pub mod gen_data;
pub mod generation_args;
pub mod grpo_cli;
pub mod jsonl;
pub mod pipeline;
pub mod rollout_cli;
pub mod sample_cli;
pub mod score_cli;
pub mod serve_check;
pub mod serve_trees;
pub mod sft_cli;
pub mod stats;
mod tempfiles;

pub use error::{Error, Result};
