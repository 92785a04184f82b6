//! What an evaluation runs (TOML). Every field has a default: the paper's
//! sweeps (child-count budgets 0..=10, n = 1..=8 samples for SoS+).

use crate::error::{Error, Result};
use apr_rollout::{GenerationConfig, Limits};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The evaluation of one or more models on one problem set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// Validation problems (JSON Lines with `nums` and `target`).
    pub problems: PathBuf,
    /// Use the first N problems.
    pub limit: Option<usize>,
    /// KV slots of the engine (the native backend).
    pub slots: usize,
    /// Where the calls are generated: natively or on servers.
    pub generation: GenerationConfig,
    /// Engine limits (context window, tokens per call, ...).
    pub limits: Limits,
    /// Seed of the sampled runs.
    pub seed: u64,
    /// Conditioning of an APR model's greedy run (`Sub Call Budget: n`).
    pub apr_budget: Option<u32>,
    /// Conditioning of a SoS+ model's greedy run (`Token Budget: n`).
    pub sosp_budget: Option<u32>,
    /// APR child-count budgets to sweep (greedy).
    pub apr_budgets: Vec<u32>,
    /// SoS+ token budgets to sweep (greedy).
    pub sosp_budgets: Vec<u32>,
    /// Temperatures to sweep (one sample per problem each).
    pub temperatures: Vec<f64>,
    /// Samples per problem for SoS+ cons@n and pass@n (n = 1..=this; 0
    /// skips them).
    pub sosp_samples: usize,
    /// Samples per problem for APR cons@n and pass@n (the paper scales
    /// APR by its budget instead; an unconditioned APR model has none, so
    /// sampling is its token-scaling curve). 0 skips them.
    pub apr_samples: usize,
    /// Temperature of the SoS+ and APR samples.
    #[serde(alias = "sosp_sample_temperature")]
    pub sample_temperature: f64,
    /// Context windows at which cumulative accuracy is reported.
    pub context_windows: Vec<usize>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            problems: PathBuf::from("datasets/countdown-val/val.jsonl"),
            limit: None,
            slots: 64,
            generation: GenerationConfig::default(),
            limits: Limits::default(),
            seed: 0,
            apr_budget: None,
            sosp_budget: None,
            apr_budgets: (0..=10).collect(),
            sosp_budgets: vec![512, 1024, 2048, 4096],
            temperatures: vec![0.5, 1.0],
            sosp_samples: 8,
            apr_samples: 0,
            sample_temperature: 1.0,
            context_windows: vec![256, 512, 1024, 2048, 4096],
        }
    }
}

impl EvalConfig {
    /// Drops every sweep and the SoS+ samples: the greedy run only.
    pub fn greedy_only(&mut self) {
        self.apr_budgets.clear();
        self.sosp_budgets.clear();
        self.temperatures.clear();
        self.sosp_samples = 0;
        self.apr_samples = 0;
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        if self.slots == 0 {
            return Err(Error::Config("slots must be at least 1".into()));
        }
        self.generation.validate()?;
        if self
            .temperatures
            .iter()
            .any(|t| !(*t > 0.0 && t.is_finite()))
        {
            return Err(Error::Config(
                "temperatures must be positive (the greedy run is always done)".into(),
            ));
        }
        if self.sosp_samples.max(self.apr_samples) > 0
            && !(self.sample_temperature > 0.0 && self.sample_temperature.is_finite())
        {
            return Err(Error::Config(
                "sample_temperature must be positive: greedy samples are identical".into(),
            ));
        }
        Ok(())
    }
}
