//! Generation backends: what runs the calls the orchestrator ([`crate::Engine`])
//! asks for. The orchestrator owns the thread trees and the protocol; a
//! backend owns decoding. They meet at the granularity of a call: a prompt
//! of token ids goes in, generated ids with log-probabilities and the
//! reason the call ended come out. Many calls are in flight at once.
//!
//! - [`native::Native`]: continuous batching over a [`crate::StepModel`]'s
//!   KV slots (our host decoder on a CPU, burn on a GPU), with each
//!   session's keys and values kept between its calls.
//! - [`server::Server`]: calls on vLLM or SGLang servers over HTTP
//!   ([`apr_serve::ServerPool`]); the servers' prefix caches do the reuse.

pub mod native;
pub mod server;

use crate::config::RolloutConfig;
use crate::engine::EngineStats;
use crate::error::Result;
use crate::result::FinishReason;
use std::time::Instant;

pub use crate::engine::CallEnds;

/// One call the orchestrator asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct CallSpec {
    /// The thread the call belongs to. A thread has at most one call in
    /// flight; a backend may keep its state (keys and values, a sampler's
    /// generator) between its calls until [`Backend::end_session`].
    pub session: usize,
    /// The (problem, sample) the thread belongs to: its calls share
    /// `limits.max_problem_tokens`.
    pub task: usize,
    /// `<s>`, the conditioning prefix and the prompt, as token ids.
    pub prompt: Vec<u32>,
    /// The thread's seed ([`crate::sampling::thread_seed`]).
    pub seed: u64,
    /// How many calls of this session came before this one.
    pub index: usize,
    /// Whether the call goes ahead of calls already waiting: children and
    /// resumed parents finish trees, new roots start them.
    pub first: bool,
}

/// A call that ended.
#[derive(Debug, Clone, PartialEq)]
pub struct CallDone {
    /// The call's session ([`CallSpec::session`]).
    pub session: usize,
    /// The generated ids, up to and including the token that ended the
    /// call.
    pub generated: Vec<u32>,
    /// The log-probability of each generated id under the distribution
    /// the run's [`crate::LogprobBase`] names (by default the model's own:
    /// temperature 1, no truncation).
    pub logprobs: Vec<f32>,
    /// Why the call ended ([`CallEnds`]'s rules).
    pub finish: FinishReason,
    /// Prompt tokens not computed again: kept from the session's last
    /// call, or found in a server's prefix cache.
    pub reused: usize,
    /// Prompt tokens computed.
    pub prefilled: usize,
    /// When the backend began computing the call.
    pub started: Instant,
}

/// What runs calls. The orchestrator [`Backend::start`]s a run, submits
/// calls, collects them with [`Backend::wait`] and ends sessions whose
/// thread is done.
pub trait Backend {
    /// A short name for reports (`native`, `vllm`, `sglang`).
    fn name(&self) -> &'static str;
    /// Most tokens (prompt and generation) one call may hold.
    fn capacity(&self) -> usize;
    /// Begins a run under `cfg`, whose calls end by `ends`; state of an
    /// earlier run is dropped.
    fn start(&mut self, cfg: &RolloutConfig, ends: CallEnds) -> Result<()>;
    /// Queues a call.
    fn submit(&mut self, call: CallSpec) -> Result<()>;
    /// Blocks until at least one call has ended; returns every call that
    /// has. An error if no call is in flight.
    fn wait(&mut self) -> Result<Vec<CallDone>>;
    /// The session's thread is done: its state may go.
    fn end_session(&mut self, session: usize) -> Result<()>;
    /// Counters since [`Backend::start`] (`threads` and `seconds` are the
    /// orchestrator's).
    fn stats(&self) -> EngineStats;
}

/// A borrowed backend is a backend: an engine can run on one that outlives
/// it (a connected server kept between runs).
impl<T: Backend + ?Sized> Backend for &mut T {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn capacity(&self) -> usize {
        (**self).capacity()
    }
    fn start(&mut self, cfg: &RolloutConfig, ends: CallEnds) -> Result<()> {
        (**self).start(cfg, ends)
    }
    fn submit(&mut self, call: CallSpec) -> Result<()> {
        (**self).submit(call)
    }
    fn wait(&mut self) -> Result<Vec<CallDone>> {
        (**self).wait()
    }
    fn end_session(&mut self, session: usize) -> Result<()> {
        (**self).end_session(session)
    }
    fn stats(&self) -> EngineStats {
        (**self).stats()
    }
}
