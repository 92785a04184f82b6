//! The paper's evaluation of APR and SoS+ models on Countdown.
//!
//! - [`metrics`]: pure functions over rollout results: a thread's context,
//!   cumulative accuracy against the context window, cons@n and pass@n.
//! - [`run`]: [`run::evaluate`] runs a model through the sweeps of an
//!   [`EvalConfig`] with the batched engine and writes per-problem JSON
//!   Lines and a summary.
//! - [`report`]: plots in the style of the paper's figures and a markdown
//!   report over several evaluated models.
//!
//! Departures from the paper: latency is measured inside one batched
//! engine run (every problem of the set decoded together on one device),
//! not one problem at a time on a serving cluster; it is comparable
//! between models evaluated with the same settings, not to the paper's
//! milliseconds.

pub mod config;
pub mod error;
pub mod metrics;
pub mod report;
pub mod run;

pub use config::EvalConfig;
pub use error::{Error, Result};
pub use run::{evaluate, ModelEval, SweepPoint};
