//! The parallel rollout engine: many problems at once, each a tree of
//! threads that may `spawn` children and `join` their results, decoded
//! together in batched forward passes over one KV cache.
//!
//! - [`StepModel`] is what the engine needs of a model: a fixed number of
//!   KV slots, and a step that feeds tokens to some slots and returns the
//!   next-token logits of each. [`LlamaStepper`] runs an
//!   [`apr_model::Llama`]; [`mock::ScriptedModel`] replays scripted
//!   completions for tests.
//! - [`Engine`] schedules threads over the slots (continuous batching:
//!   prefill and decode of different threads share a step; new threads
//!   take slots as others finish), applies the spawn/join protocol of
//!   [`apr_trace::protocol`], and returns one [`ProblemResult`] per
//!   (problem, sample).
//!
//! See `docs/rollout.md` for the lifecycle, the limits and the numbers.

pub mod config;
pub mod engine;
pub mod error;
pub mod mock;
pub mod result;
pub mod sampling;
pub mod stepper;

pub use config::{Limits, Mode, RolloutConfig};
pub use engine::{Engine, EngineStats};
pub use error::{Error, Result};
pub use result::{CallRecord, FinishReason, ProblemResult, Summary, ThreadResult};
pub use sampling::SamplingParams;
pub use stepper::{load_model, run_llama, run_stepper, LlamaStepper, StepModel, StepperKind};
