//! Rollout configuration: mode, sampling, limits and the KV budget. Every
//! field has a default, so a TOML file need only name what it changes.

use crate::error::{Error, Result};
use crate::sampling::SamplingParams;
use apr_trace::{Conditioning, Task, TraceMode};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// How a model's threads are run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Adaptive parallel reasoning: a call ending in a spawn block spawns
    /// child threads; their join messages resume the parent.
    #[default]
    Apr,
    /// One thread per sample (SoS+): a spawn block is not acted on.
    Single,
}

impl Mode {
    /// The trace mode its models are trained on: what their root prompt is
    /// and how their answer is scored.
    pub fn trace_mode(self) -> TraceMode {
        match self {
            Mode::Apr => TraceMode::Apr,
            Mode::Single => TraceMode::Sosp,
        }
    }
}

/// Limits on threads and problems. A thread that reaches one ends with a
/// recorded [`crate::FinishReason`]; its problem still gets a result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Context window per thread in tokens (0: the model's slot capacity).
    pub context: usize,
    /// Most new tokens per call.
    pub max_new_tokens: usize,
    /// Most children one spawn block may name.
    pub max_children: usize,
    /// Most spawn rounds per thread.
    pub max_rounds: usize,
    /// Deepest nesting: 1 lets the root spawn, 2 lets its children spawn too.
    pub max_depth: usize,
    /// Most tokens (prompt and generated, every call of every thread) per
    /// problem sample; 0 for no limit.
    pub max_problem_tokens: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            context: 0,
            max_new_tokens: 4096,
            max_children: 16,
            max_rounds: 8,
            max_depth: 2,
            max_problem_tokens: 0,
        }
    }
}

/// Everything a rollout needs besides the model and the problems.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RolloutConfig {
    /// APR (spawn/join) or single-thread.
    pub mode: Mode,
    /// Independent samples per problem.
    pub samples: usize,
    /// Token sampling of every thread.
    pub sampling: SamplingParams,
    /// Seed; each (problem, sample, thread) derives its own stream.
    pub seed: u64,
    /// Conditioning of the root call: `Sub Call Budget: n` (APR) or
    /// `Token Budget: n` (single); none when absent.
    pub budget: Option<u32>,
    /// Limits.
    pub limits: Limits,
    /// Most tokens fed in one forward step (prefill chunks share it;
    /// decoding threads always get their one token).
    pub step_tokens: usize,
    /// Keep a blocked parent's KV slot and prefill only the new part of its
    /// continuation (`false`: prefill the whole continuation again).
    pub prefix_reuse: bool,
    /// Treat `</s>` as an ordinary token, so every call runs to
    /// `limits.max_new_tokens` (for throughput benchmarks, as vLLM's
    /// `ignore_eos`).
    pub ignore_eos: bool,
    /// How the child indices of a model's spawn block are read: by
    /// position (the default, as the reference's rollout code) or strictly
    /// (entries numbered out of order end the thread with a protocol
    /// error).
    pub spawn_indices: apr_trace::SpawnIndices,
}

impl Default for RolloutConfig {
    fn default() -> Self {
        RolloutConfig {
            mode: Mode::Apr,
            samples: 1,
            sampling: SamplingParams::default(),
            seed: 0,
            budget: None,
            limits: Limits::default(),
            step_tokens: 2048,
            prefix_reuse: true,
            ignore_eos: false,
            spawn_indices: apr_trace::SpawnIndices::Positional,
        }
    }
}

impl RolloutConfig {
    /// Reads a TOML file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.into(),
            source,
        })?;
        let c: RolloutConfig = toml::from_str(&text).map_err(|source| Error::Toml {
            path: path.into(),
            source,
        })?;
        c.validate()?;
        Ok(c)
    }

    /// The conditioning prefix and the text of a problem's root call: the
    /// task's root prompt ([`Task::root_prompt`]) with `budget` as the
    /// mode's conditioning. The engine is fed `<s>`, the prefix, then the text.
    pub fn root_call(&self, problem: &impl Task) -> (Option<Conditioning>, String) {
        let mode = self.mode.trace_mode();
        (
            self.budget.map(|b| mode.conditioning(b)),
            problem.root_prompt(mode),
        )
    }

    /// Checks values the engine cannot run with.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Config(m.into()));
        if self.samples == 0 {
            return bad("samples must be at least 1");
        }
        if self.limits.max_new_tokens == 0 {
            return bad("limits.max_new_tokens must be at least 1");
        }
        if self.step_tokens == 0 {
            return bad("step_tokens must be at least 1");
        }
        self.sampling.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_needs_only_what_it_changes() {
        let c: RolloutConfig =
            toml::from_str("mode = \"single\"\n[limits]\nmax_children = 4\n").unwrap();
        assert_eq!(c.mode, Mode::Single);
        assert_eq!(c.limits.max_children, 4);
        assert_eq!(c.limits.max_rounds, Limits::default().max_rounds);
        assert!(toml::from_str::<RolloutConfig>("mdoe = \"apr\"").is_err());
    }

    #[test]
    fn zero_samples_are_refused() {
        let c = RolloutConfig {
            samples: 0,
            ..Default::default()
        };
        assert!(matches!(c.validate(), Err(Error::Config(_))));
    }
}
