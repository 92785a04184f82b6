//! The SFT configuration (TOML).

use crate::error::{Error, Result};
use apr_model::ModelConfig;
use apr_trace::TraceMode;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Which traces, hence which sequences and conditioning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceKind {
    /// APR: one sequence per parent call (with `Sub Call Budget: n`, n the
    /// problem's child-thread count, under [`ConditioningMode::Budget`])
    /// and one per child call.
    Apr,
    /// SoS+: one sequence per problem (with `Token Budget: B` under
    /// [`ConditioningMode::Budget`]).
    Sosp,
}

impl TraceKind {
    /// The trace mode: the root prompt and conditioning of its models.
    pub fn mode(self) -> TraceMode {
        match self {
            TraceKind::Apr => TraceMode::Apr,
            TraceKind::Sosp => TraceMode::Sosp,
        }
    }
}

/// Whether the root calls of the training sequences carry a budget prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConditioningMode {
    /// No prefix on any sequence (the paper's headline models).
    None,
    /// APR: `Sub Call Budget: n ` on the root's calls (n the record's
    /// child threads); SoS+: `Token Budget: B ` (B the trace's token count
    /// rounded up to `token_budget_bin`). The paper's budget-conditioned
    /// models.
    Budget,
}

/// Data section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Trace files (JSON Lines, as `gen-data traces` writes).
    pub train: Vec<PathBuf>,
    /// Which traces they are.
    pub kind: TraceKind,
    /// Budget conditioning of the root calls (required: a config says
    /// which model it trains).
    pub conditioning: ConditioningMode,
    /// Share of the problems held out for the validation loss.
    #[serde(default = "default_val_fraction")]
    pub val_fraction: f64,
    /// At most this many validation sequences.
    #[serde(default = "default_val_max")]
    pub val_max_sequences: usize,
    /// Use at most this many records (problems) of the files.
    #[serde(default)]
    pub max_problems: Option<usize>,
    /// Keep only solved traces (the paper trains on all; default false).
    #[serde(default)]
    pub solved_only: bool,
    /// SoS+ token-budget bin (512 in the paper).
    #[serde(default = "default_bin")]
    pub token_budget_bin: u32,
    /// Train also on the tokens the engine inserts at rollout time in an
    /// APR parent's continuation: its pre-spawn text (already trained in
    /// the previous call) and the join block. Default `false`: loss starts
    /// after `<End Sub Searches>`. Departure from the reference, which
    /// trains on every token; with it, models learn to write join blocks
    /// themselves instead of spawning (seen in our tiny runs).
    #[serde(default)]
    pub loss_on_inserted: bool,
    /// Loss weight of the tokens an APR parent writes after a join block
    /// (its answer path, which repeats the winning child's message, or its
    /// continued search), relative to 1 for every other token; the step's
    /// loss is the weighted mean. Default 1 (the reference's uniform
    /// token mean; skipped when serialising, so recorded configs keep
    /// their form). Validation loss is always unweighted.
    #[serde(default = "unit_weight", skip_serializing_if = "is_unit_weight")]
    pub continuation_weight: f32,
}

fn unit_weight() -> f32 {
    1.0
}
fn is_unit_weight(w: &f32) -> bool {
    *w == 1.0
}

fn default_val_fraction() -> f64 {
    0.02
}
fn default_val_max() -> usize {
    256
}
fn default_bin() -> u32 {
    512
}

/// Optimisation section. Defaults are for the `tiny` preset on a CPU.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    /// Seed of the weights and the data order.
    pub seed: u64,
    /// Peak learning rate.
    pub lr: f64,
    /// Final learning rate as a fraction of the peak (cosine decay).
    #[serde(default = "default_min_lr")]
    pub min_lr_ratio: f64,
    /// Linear warm-up steps.
    pub warmup_steps: usize,
    /// Optimiser steps in all.
    pub max_steps: usize,
    /// Padded tokens per micro-batch (rows x longest row).
    pub batch_tokens: usize,
    /// Sequences per optimiser step (the paper: 256), packed into as many
    /// micro-batches of at most `batch_tokens` as they need; `accum_steps`
    /// must then be 1. Absent: a step is `accum_steps` micro-batches of
    /// `batch_tokens`, however many sequences they hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_sequences: Option<usize>,
    /// Micro-batches per optimiser step.
    #[serde(default = "one")]
    pub accum_steps: usize,
    /// Devices to split each step's micro-batches over (data parallel,
    /// burn's multi-device gradient accumulation; `crate::parallel`): the
    /// run's device and the next ones of its backend (`cuda:0` with 4
    /// gives `cuda:0..=3`). At most `accum_steps`; 1 (the default) is one
    /// device.
    #[serde(default = "one")]
    pub data_parallel: usize,
    /// AdamW weight decay.
    #[serde(default = "default_wd")]
    pub weight_decay: f64,
    /// AdamW beta 1.
    #[serde(default = "default_b1")]
    pub beta1: f64,
    /// AdamW beta 2.
    #[serde(default = "default_b2")]
    pub beta2: f64,
    /// AdamW epsilon.
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Global gradient-norm clip (0: none).
    #[serde(default = "one_f")]
    pub grad_clip: f64,
    /// Validation every this many steps (0: only at the end).
    #[serde(default)]
    pub eval_every: usize,
    /// Checkpoint every this many steps (0: only at the end).
    #[serde(default)]
    pub checkpoint_every: usize,
    /// Stop (with a checkpoint) after this many minutes of training.
    #[serde(default)]
    pub time_limit_minutes: Option<f64>,
    /// Keep the model export of each of the last this many checkpoints
    /// (`checkpoints/step-N/`) and write their element-wise mean to
    /// `model-avg/` when the run ends (`crate::snapshots`); 0, the
    /// default: neither. With `checkpoint_every` 500 and 7,000 steps, 5
    /// averages steps 5,000 to 7,000.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub average_last: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn default_min_lr() -> f64 {
    0.1
}
fn one() -> usize {
    1
}
fn one_f() -> f64 {
    1.0
}
fn default_wd() -> f64 {
    0.01
}
fn default_b1() -> f64 {
    0.9
}
fn default_b2() -> f64 {
    0.95
}
fn default_eps() -> f64 {
    1e-8
}

/// Model section: a preset, optionally with fields replaced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// `tiny`, `small` or `paper`.
    pub preset: String,
    /// Context window override.
    #[serde(default)]
    pub max_seq_len: Option<usize>,
    /// Width override (small models for tests and sweeps).
    #[serde(default)]
    pub hidden_size: Option<usize>,
    /// MLP width override.
    #[serde(default)]
    pub intermediate_size: Option<usize>,
    /// Depth override.
    #[serde(default)]
    pub num_layers: Option<usize>,
    /// Query heads override.
    #[serde(default)]
    pub num_heads: Option<usize>,
    /// Key/value heads override.
    #[serde(default)]
    pub num_kv_heads: Option<usize>,
}

/// A whole SFT run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftConfig {
    /// Output directory (metrics, checkpoints, plots, the config).
    pub out: PathBuf,
    /// The model.
    pub model: ModelSection,
    /// The data.
    pub data: DataConfig,
    /// The optimisation.
    pub optim: OptimConfig,
}

impl SftConfig {
    /// Parses a TOML config.
    pub fn from_toml(text: &str) -> Result<Self> {
        let c: SftConfig = toml::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    /// Reads a TOML config file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_toml(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// The model shape.
    pub fn model_config(&self) -> Result<ModelConfig> {
        let mut m = ModelConfig::preset(&self.model.preset)?;
        let s = &self.model;
        for (field, v) in [
            (&mut m.max_seq_len, s.max_seq_len),
            (&mut m.hidden_size, s.hidden_size),
            (&mut m.intermediate_size, s.intermediate_size),
            (&mut m.num_layers, s.num_layers),
            (&mut m.num_heads, s.num_heads),
            (&mut m.num_kv_heads, s.num_kv_heads),
        ] {
            if let Some(v) = v {
                *field = v;
            }
        }
        m.vocab_size = apr_trace::TraceTokenizer::new().vocab_size();
        m.validate()?;
        Ok(m)
    }

    /// Checks the numbers.
    pub fn validate(&self) -> Result<()> {
        let o = &self.optim;
        let bad = |m: &str| Err(Error::Config(m.into()));
        if self.data.train.is_empty() {
            return bad("data.train lists no file");
        }
        if !(0.0..1.0).contains(&self.data.val_fraction) {
            return bad("data.val_fraction must be in [0, 1)");
        }
        let w = self.data.continuation_weight;
        if !(w.is_finite() && w > 0.0) {
            return bad("data.continuation_weight must be a positive number");
        }
        if w != 1.0 && self.data.kind != TraceKind::Apr {
            return bad("data.continuation_weight applies to APR traces only (SoS+ has no join)");
        }
        if o.max_steps == 0 || o.batch_tokens == 0 || o.accum_steps == 0 {
            return bad("max_steps, batch_tokens and accum_steps must be positive");
        }
        if o.average_last > 1 && o.checkpoint_every == 0 {
            return bad(
                "average_last above 1 needs checkpoint_every (the checkpoints it averages)",
            );
        }
        match o.batch_sequences {
            Some(n) if n == 0 || o.accum_steps != 1 => {
                return bad("batch_sequences must be positive, with accum_steps = 1 (its micro-batches follow from batch_tokens)");
            }
            Some(_) if o.data_parallel == 0 => return bad("data_parallel must be at least 1"),
            None if o.data_parallel == 0 || o.data_parallel > o.accum_steps => {
                return bad("data_parallel must be between 1 and accum_steps (each device takes whole micro-batches)");
            }
            _ => {}
        }
        crate::floats::check(
            "min_lr_ratio",
            o.min_lr_ratio,
            (0.0..=1.0).contains(&o.min_lr_ratio),
            "in [0, 1]",
        )?;
        crate::floats::adam_floats!(o).validate()
    }

    /// Learning rate at optimiser step `step` (0-based): linear warm-up to
    /// `lr`, then cosine decay to `lr * min_lr_ratio` at `max_steps`.
    pub fn lr_at(&self, step: usize) -> f64 {
        let o = &self.optim;
        if step < o.warmup_steps {
            return o.lr * (step + 1) as f64 / o.warmup_steps as f64;
        }
        let span = (o.max_steps - o.warmup_steps).max(1) as f64;
        let p = ((step - o.warmup_steps) as f64 / span).min(1.0);
        let min = o.lr * o.min_lr_ratio;
        min + 0.5 * (o.lr - min) * (1.0 + (std::f64::consts::PI * p).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SftConfig {
        SftConfig::from_toml(
            r#"
out = "runs/x"
[model]
preset = "tiny"
[data]
train = ["a.jsonl"]
kind = "apr"
conditioning = "none"
[optim]
seed = 1
lr = 1e-3
warmup_steps = 10
max_steps = 110
batch_tokens = 4096
"#,
        )
        .unwrap()
    }

    /// Non-finite and out-of-range floats are config errors naming the
    /// key (issue 20: `lr = inf` or `weight_decay = nan` trained to NaN
    /// weights and exited 0).
    #[test]
    fn non_finite_or_out_of_range_floats_are_refused() {
        assert!(cfg().validate().is_ok());
        type Set = fn(&mut OptimConfig);
        let bad: [(&str, Set); 7] = [
            ("lr", |o| o.lr = f64::INFINITY),
            ("lr", |o| o.lr = 1e30),
            ("weight_decay", |o| o.weight_decay = f64::NAN),
            ("grad_clip", |o| o.grad_clip = f64::NAN),
            ("beta1", |o| o.beta1 = 1.0),
            ("min_lr_ratio", |o| o.min_lr_ratio = f64::NAN),
            ("time_limit_minutes", |o| {
                o.time_limit_minutes = Some(f64::NAN)
            }),
        ];
        for (name, set) in bad {
            let mut c = cfg();
            set(&mut c.optim);
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(name), "{name}: {e}");
        }
    }

    #[test]
    fn batch_sequences_needs_one_micro_batch_setting() {
        let mut c = cfg();
        c.optim.batch_sequences = Some(256);
        c.validate().unwrap();
        c.optim.accum_steps = 2;
        assert!(c.validate().is_err());
        c.optim.accum_steps = 1;
        c.optim.batch_sequences = Some(0);
        assert!(c.validate().is_err());
    }

    #[test]
    fn schedule_warms_up_then_decays_to_the_floor() {
        let c = cfg();
        assert!((c.lr_at(0) - 1e-4).abs() < 1e-12);
        assert!((c.lr_at(9) - 1e-3).abs() < 1e-12);
        assert!((c.lr_at(10) - 1e-3).abs() < 1e-12);
        // Halfway through the decay: the mean of peak and floor.
        assert!((c.lr_at(60) - 0.55e-3).abs() < 1e-12);
        assert!((c.lr_at(110) - 1e-4).abs() < 1e-12);
        assert!((c.lr_at(500) - 1e-4).abs() < 1e-12);
    }

    #[test]
    fn conditioning_is_required() {
        assert_eq!(cfg().data.conditioning, ConditioningMode::None);
        let text = toml::to_string(&cfg()).unwrap();
        let budget = text.replace("conditioning = \"none\"", "conditioning = \"budget\"");
        let c = SftConfig::from_toml(&budget).unwrap();
        assert_eq!(c.data.conditioning, ConditioningMode::Budget);
        let missing = text.replace("conditioning = \"none\"\n", "");
        assert_ne!(missing, text);
        assert!(SftConfig::from_toml(&missing).is_err());
        assert_eq!(TraceKind::Sosp.mode(), TraceMode::Sosp);
    }

    #[test]
    fn the_experiment_configs_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments/configs");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("sft-") && name.ends_with(".toml") {
                SftConfig::from_file(&p).unwrap();
                n += 1;
            }
        }
        assert!(n >= 7, "{n} configs in {}", dir.display());
    }

    #[test]
    fn bad_configs_are_errors() {
        assert!(SftConfig::from_toml("out = 1").is_err());
        let mut c = cfg();
        c.optim.max_steps = 0;
        assert!(c.validate().is_err());
        let mut c = cfg();
        c.data.train.clear();
        assert!(c.validate().is_err());
        assert_eq!(cfg().model_config().unwrap().vocab_size, 1233);
    }

    #[test]
    fn continuation_weight_is_positive_apr_only_and_unwritten_at_one() {
        assert_eq!(cfg().data.continuation_weight, 1.0);
        assert!(!toml::to_string(&cfg())
            .unwrap()
            .contains("continuation_weight"));
        let mut c = cfg();
        c.data.continuation_weight = 5.0;
        assert!(c.validate().is_ok());
        let back = SftConfig::from_toml(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(back.data.continuation_weight, 5.0);
        for w in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            c.data.continuation_weight = w;
            assert!(c.validate().is_err(), "{w}");
        }
        c.data.continuation_weight = 5.0;
        c.data.kind = TraceKind::Sosp;
        assert!(c.validate().is_err());
    }
}
