//! The experiment's configuration (one TOML file, presets in
//! `experiments/configs/`).

use crate::error::{Error, Result};
use apr_countdown::{AprRecipe, SospRecipe};
use apr_eval::EvalConfig;
use apr_rollout::RolloutConfig;
use apr_train::config::{ConditioningMode, ModelSection, OptimConfig};
use apr_train::GrpoOptim;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Problem-set settings (training and validation sets share them).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProblemsConfig {
    /// Training problems.
    pub count: u64,
    /// Numbers per problem, `4` or `3-6`.
    pub numbers: String,
    /// Smallest target.
    pub min_target: u64,
    /// Largest target.
    pub max_target: u64,
    /// Largest input number (default: max_target - 1, as the reference).
    #[serde(default)]
    pub max_number: Option<u64>,
    /// Problem files to stay disjoint from (the validation set always is).
    #[serde(default)]
    pub exclude: Vec<PathBuf>,
}

/// The validation set: a file, or drawn with the problem settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValConfig {
    /// Use this file (e.g. `datasets/countdown-val/val.jsonl`).
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Otherwise draw this many problems (seed: the master seed + 1000).
    #[serde(default)]
    pub count: u64,
}

/// SFT of both models.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftStage {
    /// The model shape.
    pub model: ModelSection,
    /// Budget conditioning of the two headline models (`apr-sft`,
    /// `sosp-sft`): `none` as the paper's headline models (official
    /// `apr.yaml`, `sosp.yaml`: `condition_prefix: null`), or `budget`.
    pub conditioning: ConditioningMode,
    /// Optimisation of a third, budget-conditioned APR model
    /// (`apr-cond-sft`: `Sub Call Budget: n`, the paper's
    /// `..._num_subcall_cond` model of `apr_cond10.yaml`), evaluated on the
    /// child-count budget sweep. Absent: no such stage.
    #[serde(default)]
    pub apr_cond: Option<OptimConfig>,
    /// Share of problems held out for the validation loss.
    pub val_fraction: f64,
    /// Most validation sequences.
    pub val_max_sequences: usize,
    /// Optimisation of the APR model.
    pub apr: OptimConfig,
    /// Optimisation of the SoS+ model.
    pub sosp: OptimConfig,
    /// Loss weight of the APR models' continuation tokens (what a parent
    /// writes after a join), `apr_train::DataConfig::continuation_weight`.
    /// Default 1, the reference's uniform token mean.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub apr_continuation_weight: f32,
}

fn one() -> f32 {
    1.0
}
fn is_one(w: &f32) -> bool {
    *w == 1.0
}

/// GRPO of one model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpoModel {
    /// Its rollouts (mode, sampling, budget, limits).
    pub rollout: RolloutConfig,
    /// Its optimisation.
    #[serde(default)]
    pub optim: GrpoOptim,
}

/// GRPO of both models.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpoStage {
    /// Engine KV slots.
    pub slots: usize,
    /// Greedy validation problems during GRPO (0: none; the evaluation
    /// stage compares SFT and GRPO models in any case).
    #[serde(default)]
    pub val_limit: usize,
    /// The APR model.
    pub apr: GrpoModel,
    /// The SoS+ model.
    pub sosp: GrpoModel,
}

/// The evaluation stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalStage {
    /// Settings (`problems` is replaced by the experiment's validation set).
    pub settings: EvalConfig,
    /// Models that get the sweeps (budgets, temperatures, cons@n); the
    /// others get the greedy run only. Names: `apr-sft`, `apr-grpo`,
    /// `sosp-sft`, `sosp-grpo`.
    pub sweep: Vec<String>,
}

/// The experiment's configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Preset name, for the report.
    pub preset: String,
    /// Where results go.
    pub out_dir: PathBuf,
    /// Master seed.
    pub seed: u64,
    /// Training problems.
    pub problems: ProblemsConfig,
    /// Validation problems.
    pub val: ValConfig,
    /// APR trace recipe.
    pub apr: AprRecipe,
    /// SoS+ trace recipe.
    pub sosp: SospRecipe,
    /// SFT.
    pub sft: SftStage,
    /// GRPO.
    pub grpo: GrpoStage,
    /// Evaluation.
    pub eval: EvalStage,
    /// Where GRPO's and the evaluation's rollouts are generated (default:
    /// natively).
    #[serde(default)]
    pub generation: apr_rollout::GenerationConfig,
}

impl Config {
    /// Parses a TOML configuration.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config> {
        let c: Config =
            toml::from_str(text).map_err(|e| Error::Config(format!("{origin}: {e}")))?;
        c.apr.validate()?;
        c.sosp.validate()?;
        c.eval.settings.validate()?;
        let unconditioned = c.sft.conditioning == ConditioningMode::None;
        for (name, m) in [("apr", &c.grpo.apr), ("sosp", &c.grpo.sosp)] {
            if unconditioned && m.rollout.budget.is_some() {
                return Err(Error::Config(format!(
                    "{origin}: [grpo.{name}.rollout] has a budget, but [sft] conditioning = \"none\" trains an unconditioned model"
                )));
            }
        }
        if c.sft.apr_cond.is_some() && c.eval.settings.apr_budget.is_none() {
            return Err(Error::Config(format!(
                "{origin}: [sft.apr_cond] needs [eval.settings] apr_budget (the conditioned model's greedy budget)"
            )));
        }
        if c.val.file.is_none() && c.val.count == 0 {
            return Err(Error::Config(format!(
                "{origin}: [val] needs a file or a count"
            )));
        }
        Ok(c)
    }
}
