//! # apr-experiments
//!
//! The library behind the experiment binaries in `experiments/src/bin/`:
//! each binary parses its arguments and calls one function here.

pub mod error;
pub mod gen_data;
pub mod jsonl;
pub mod pipeline;
pub mod stats;

pub use error::{Error, Result};
