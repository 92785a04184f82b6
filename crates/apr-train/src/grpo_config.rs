//! The GRPO configuration (TOML). Defaults are the paper's hyperparameters
//! (batch 64 problems x group 5, temperature 1, lr 1e-5, clip 0.2, 2 inner
//! steps, grad-norm clip 1, KL 0.001 for APR, validation every 25 steps,
//! 150 steps); the `tiny` experiment preset replaces several to fit a CPU.

use crate::error::{Error, Result};
use crate::grpo::LossAggregation;
use apr_rollout::{GenerationConfig, Mode, RolloutConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Optimisation and the GRPO objective.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpoOptim {
    /// Seed of the problem order and the rollouts.
    pub seed: u64,
    /// Learning rate (constant after warm-up).
    pub lr: f64,
    /// Linear warm-up steps.
    pub warmup_steps: usize,
    /// GRPO steps (one rollout batch each).
    pub steps: usize,
    /// Problems per rollout batch.
    pub batch_problems: usize,
    /// Samples per problem (the group).
    pub group_size: usize,
    /// Optimiser steps on each rollout batch (PPO epochs).
    pub inner_steps: usize,
    /// PPO clip epsilon.
    pub clip_eps: f64,
    /// Coefficient of the k3 KL to the reference (the initial policy); 0
    /// skips the reference model entirely.
    pub kl_coef: f64,
    /// Divide advantages by the group's standard deviation (plus `std_eps`).
    pub normalize_std: bool,
    /// Added to the standard deviation.
    pub std_eps: f64,
    /// How token losses become the batch loss.
    pub aggregation: LossAggregation,
    /// Drop groups whose advantages are all zero (every sample got the
    /// same reward) before the update. Only with `kl_coef = 0`, as the
    /// reference: with a KL term those sequences still carry its gradient.
    pub filter_zero_advantage: bool,
    /// Global gradient-norm clip (0: none).
    pub grad_clip: f64,
    /// Padded tokens per training micro-batch (memory, not results).
    pub micro_batch_tokens: usize,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// AdamW beta 1.
    pub beta1: f64,
    /// AdamW beta 2.
    pub beta2: f64,
    /// AdamW epsilon.
    pub eps: f64,
    /// Validation every this many steps (0: only at the start and the end).
    pub val_every: usize,
    /// Checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: usize,
    /// Stop (with a checkpoint) after this many minutes.
    pub time_limit_minutes: Option<f64>,
}

impl Default for GrpoOptim {
    fn default() -> Self {
        GrpoOptim {
            seed: 1,
            lr: 1e-5,
            warmup_steps: 0,
            steps: 150,
            batch_problems: 64,
            group_size: 5,
            inner_steps: 2,
            clip_eps: 0.2,
            kl_coef: 0.001,
            normalize_std: true,
            std_eps: 1e-6,
            aggregation: LossAggregation::SequenceMean,
            filter_zero_advantage: false,
            grad_clip: 1.0,
            micro_batch_tokens: 16384,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            val_every: 25,
            checkpoint_every: 25,
            time_limit_minutes: None,
        }
    }
}

/// A whole GRPO run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpoConfig {
    /// Output directory (metrics, checkpoints, plots, the config, the model).
    pub out: PathBuf,
    /// The initial policy (a model directory, as `train-sft` writes); also
    /// the KL reference.
    pub init: PathBuf,
    /// Training problems (JSON Lines with `nums` and `target`).
    pub problems: PathBuf,
    /// Validation problems (greedy accuracy every `val_every` steps).
    #[serde(default)]
    pub val_problems: Option<PathBuf>,
    /// Use the first N validation problems.
    #[serde(default)]
    pub val_limit: Option<usize>,
    /// KV slots of the rollout engine (the native backend).
    #[serde(default = "default_slots")]
    pub slots: usize,
    /// Where rollouts are generated: natively, or on servers that load
    /// the policy's weights after every step (from
    /// `generation.weights_dir`, by default `out/server-weights`).
    #[serde(default)]
    pub generation: GenerationConfig,
    /// The rollouts: mode, sampling (temperature 1 in the paper), budget
    /// conditioning, limits. `samples` is replaced by `optim.group_size`
    /// and `seed` by one derived from `optim.seed` and the step.
    #[serde(default = "default_rollout")]
    pub rollout: RolloutConfig,
    /// Optimisation.
    #[serde(default)]
    pub optim: GrpoOptim,
}

fn default_slots() -> usize {
    64
}

fn default_rollout() -> RolloutConfig {
    let mut r = RolloutConfig::default();
    r.sampling.temperature = 1.0;
    r
}

impl GrpoConfig {
    /// Parses a TOML config.
    pub fn from_toml(text: &str) -> Result<Self> {
        let c: GrpoConfig = toml::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    /// Reads a TOML config file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_toml(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// The paper's KL coefficient for a mode: 0.001 (APR), 0.01 (SoS+).
    pub fn paper_kl(mode: Mode) -> f64 {
        match mode {
            Mode::Apr => 0.001,
            Mode::Single => 0.01,
        }
    }

    /// Checks the numbers.
    pub fn validate(&self) -> Result<()> {
        let o = &self.optim;
        let bad = |m: &str| Err(Error::Config(m.into()));
        self.generation
            .validate()
            .map_err(|e| Error::Config(e.to_string()))?;
        if o.steps == 0 || o.batch_problems == 0 || o.inner_steps == 0 {
            return bad("steps, batch_problems and inner_steps must be positive");
        }
        if o.group_size < 2 {
            return bad("group_size must be at least 2 (advantages are group-relative)");
        }
        crate::floats::adam_floats!(o).validate()?;
        let check = crate::floats::check;
        check(
            "clip_eps",
            o.clip_eps,
            (0.0..1.0).contains(&o.clip_eps),
            "in [0, 1)",
        )?;
        check("kl_coef", o.kl_coef, o.kl_coef >= 0.0, ">= 0")?;
        check("std_eps", o.std_eps, o.std_eps >= 0.0, ">= 0")?;
        if o.filter_zero_advantage && o.kl_coef > 0.0 {
            return bad(
                "filter_zero_advantage needs kl_coef = 0: zero-advantage sequences still carry \
                 the KL gradient (the reference drops them only without a KL term)",
            );
        }
        let t = self.rollout.sampling.temperature;
        if !(t > 0.0 && t.is_finite()) {
            return bad(
                "rollout.sampling.temperature must be positive: greedy samples of a group are \
                 identical, so every advantage would be zero",
            );
        }
        if o.micro_batch_tokens == 0 || self.slots == 0 {
            return bad("micro_batch_tokens and slots must be positive");
        }
        self.rollout
            .validate()
            .map_err(|e| Error::Config(format!("rollout: {e}")))
    }

    /// Learning rate at step `step` (0-based).
    pub fn lr_at(&self, step: usize) -> f64 {
        let o = &self.optim;
        if step < o.warmup_steps {
            o.lr * (step + 1) as f64 / o.warmup_steps as f64
        } else {
            o.lr
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_defaults_and_overrides() {
        let c = GrpoConfig::from_toml(
            r#"
out = "o"
init = "m"
problems = "p.jsonl"
[rollout]
mode = "single"
[rollout.sampling]
temperature = 0.7
[optim]
lr = 1e-4
kl_coef = 0.01
"#,
        )
        .unwrap();
        assert_eq!(c.optim.batch_problems, 64);
        assert_eq!(c.optim.group_size, 5);
        assert_eq!(c.optim.inner_steps, 2);
        assert_eq!(c.optim.clip_eps, 0.2);
        assert_eq!(c.rollout.mode, Mode::Single);
        assert_eq!(c.rollout.sampling.temperature, 0.7);
        assert_eq!(default_rollout().sampling.temperature, 1.0);
        assert_eq!(c.lr_at(0), 1e-4);
        assert_eq!(GrpoConfig::paper_kl(Mode::Single), 0.01);
    }

    #[test]
    fn the_experiment_configs_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments/configs");
        let p = dir.join("grpo-tiny3-apr.toml");
        GrpoConfig::from_file(&p).unwrap();
    }

    #[test]
    fn bad_configs_are_errors() {
        let base = "out = \"o\"\ninit = \"m\"\nproblems = \"p\"\n";
        assert!(GrpoConfig::from_toml(base).is_ok());
        let ok = "[optim]\nfilter_zero_advantage = true\nkl_coef = 0.0";
        assert!(GrpoConfig::from_toml(&format!("{base}{ok}")).is_ok());
        let e = GrpoConfig::from_toml(&format!("{base}[optim]\nfilter_zero_advantage = true"));
        assert!(
            matches!(&e, Err(Error::Config(m)) if m.contains("kl_coef = 0")),
            "{e:?}"
        );
        for extra in [
            "[optim]\ngroup_size = 1",
            "[optim]\nlr = 0.0",
            "[optim]\nclip_eps = 1.5",
            "[optim]\nsteps = 0",
            "[optim]\nfilter_zero_advantage = true",
            "[optim]\nunknown = 1",
            // Non-finite or out-of-range floats (issue 20): each once ran.
            "[optim]\nlr = inf",
            "[optim]\nlr = 1e30",
            "[optim]\nkl_coef = nan",
            "[optim]\ngrad_clip = nan",
            "[optim]\nbeta1 = 1.0",
            "[optim]\neps = -1e-8",
            "[optim]\ntime_limit_minutes = -1.0",
            "[rollout]\nsamples = 0",
            // A rollout section without sampling would be greedy.
            "[rollout]\nmode = \"apr\"",
        ] {
            assert!(
                GrpoConfig::from_toml(&format!("{base}{extra}")).is_err(),
                "{extra}"
            );
        }
    }
}
