//! The parallel rollout engine: many problems at once, each a tree of
//! threads that may `spawn` children and `join` their results.
//!
//! Two halves meet at the granularity of a call ([`backend::Backend`]):
//! - the orchestrator, [`Engine`]: thread trees, prompts, spawn detection,
//!   child prompts and join blocks ([`apr_trace::protocol`]), nesting,
//!   limits, per-thread seeds, results and token accounting; it returns
//!   one [`ProblemResult`] per (problem, sample) and never touches a
//!   tensor;
//! - the generation backends: [`backend::native::Native`], continuous
//!   batching over the KV slots of a [`StepModel`] ([`LlamaStepper`] runs
//!   an [`apr_model::Llama`]; [`mock::ScriptedModel`] replays scripted
//!   completions for tests), and [`backend::server::Server`], calls on
//!   vLLM or SGLang servers ([`apr_serve`]).
//!
//! [`Generator`] picks the backend a run was configured with
//! ([`GenerationConfig`]). See `docs/rollout.md` for the lifecycle, the
//! limits and the numbers, and `docs/scale-out.md` for servers.

pub mod backend;
pub mod config;
pub mod engine;
pub mod error;
pub mod generation;
pub mod mock;
pub mod result;
pub mod sampling;
pub mod stepper;

pub use backend::{Backend, CallDone, CallSpec};
pub use config::{Limits, Mode, RolloutConfig};
pub use engine::{Engine, EngineStats};
pub use error::{Error, Result};
pub use generation::{BackendKind, GenerationConfig, Generator};
pub use result::{CallRecord, FinishReason, ProblemResult, Summary, ThreadResult};
pub use sampling::{LogprobBase, SamplingParams};
pub use stepper::{load_model, run_llama, run_stepper, LlamaStepper, StepModel, StepperKind};
