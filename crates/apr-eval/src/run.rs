//! Running a model through an evaluation: the greedy run, the budget and
//! temperature sweeps, cumulative accuracy against the context window, and
//! cons@n / pass@n over samples, with per-problem JSON Lines for each run.

use crate::config::EvalConfig;
use crate::error::{Error, Result};
use crate::metrics::{at_n, cumulative_accuracy, AtN};
use apr_countdown::Problem;
use apr_model::{AprBackend, Llama};
use apr_rollout::{Generator, Mode, ProblemResult, RolloutConfig, SamplingParams, Summary};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One point of a sweep: the setting and what it gave.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    /// The budget or temperature.
    pub value: f64,
    /// Share solved.
    pub accuracy: f64,
    /// Mean total tokens per problem.
    pub total_tokens: f64,
    /// Mean sequential tokens per problem.
    pub sequential_tokens: f64,
    /// Mean wall-clock latency per problem, seconds.
    pub latency_s: f64,
    /// Mean child threads per problem.
    pub child_threads: f64,
}

impl SweepPoint {
    /// The point of a run at setting `value`.
    pub fn of(value: f64, s: &Summary) -> SweepPoint {
        SweepPoint {
            value,
            accuracy: s.accuracy,
            total_tokens: s.mean_total_tokens,
            sequential_tokens: s.mean_sequential_tokens,
            latency_s: s.mean_latency_s,
            child_threads: s.mean_child_threads,
        }
    }
}

/// Everything measured for one model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelEval {
    /// A label (`apr-sft`, `sosp-grpo`, ...).
    pub name: String,
    /// How its threads were run.
    pub mode: Mode,
    /// Problems evaluated.
    pub problems: usize,
    /// The greedy run at the default budget.
    pub greedy: Summary,
    /// Cumulative greedy accuracy at each context window.
    pub context: Vec<(usize, f64)>,
    /// Greedy runs over the budgets (child count for APR, tokens for SoS+).
    pub budgets: Vec<SweepPoint>,
    /// One sample per problem at each temperature.
    pub temperatures: Vec<SweepPoint>,
    /// cons@n and pass@n over the sampled runs (empty when not sampled).
    pub at_n: Vec<AtN>,
    /// Seconds the whole evaluation took.
    pub seconds: f64,
}

/// Writes results as JSON Lines without token ids and log-probabilities
/// (atomically).
pub fn write_results(path: &Path, results: &[ProblemResult]) -> Result<()> {
    let mut buf = Vec::new();
    for r in results {
        let mut r = r.clone();
        r.root.strip_tokens();
        serde_json::to_writer(&mut buf, &r).map_err(|e| Error::Config(e.to_string()))?;
        buf.push(b'\n');
    }
    apr_model::checkpoint::write_atomic(path, &buf).map_err(Error::from)
}

fn run_engine<B: AprBackend>(
    gen: &mut Generator,
    model: &Llama<B>,
    problems: &[Problem],
    rc: &RolloutConfig,
    bar: &indicatif::ProgressBar,
) -> Result<Vec<ProblemResult>> {
    Ok(gen.run(model, problems, rc, |_| bar.inc(1))?.0)
}

/// Evaluates `model` (run as `mode`) on `problems` per `cfg`, writing
/// `greedy.jsonl`, `budget-<b>.jsonl`, `temperature-<t>.jsonl`,
/// `samples.jsonl` and `eval.json` into `dir`.
pub fn evaluate<B: AprBackend>(
    name: &str,
    model: &Llama<B>,
    mode: Mode,
    problems: &[Problem],
    cfg: &EvalConfig,
    dir: &Path,
    progress: bool,
) -> Result<ModelEval> {
    cfg.validate()?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let t0 = std::time::Instant::now();
    let (budget, budgets) = match mode {
        Mode::Apr => (cfg.apr_budget, &cfg.apr_budgets),
        Mode::Single => (cfg.sosp_budget, &cfg.sosp_budgets),
    };
    let samples = match mode {
        Mode::Single => cfg.sosp_samples,
        Mode::Apr => cfg.apr_samples,
    };
    let runs = 1 + budgets.len() + cfg.temperatures.len() + samples;
    let bar = if progress {
        let b = indicatif::ProgressBar::new((runs * problems.len()) as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} {bar:30} {pos}/{len} rollouts {elapsed_precise} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b.set_prefix(name.to_string());
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let base = RolloutConfig {
        mode,
        samples: 1,
        sampling: SamplingParams::greedy(),
        seed: cfg.seed,
        budget,
        limits: cfg.limits.clone(),
        ..RolloutConfig::default()
    };
    let c = &model.config;
    let mut gen = Generator::connect(&cfg.generation, cfg.slots, c.max_seq_len, c.vocab_size)?;
    gen.sync(model)?;
    let greedy_results = run_engine(&mut gen, model, problems, &base, &bar)?;
    write_results(&dir.join("greedy.jsonl"), &greedy_results)?;
    let greedy = Summary::of(&greedy_results);
    let context = cumulative_accuracy(&greedy_results, &cfg.context_windows);
    let mut sweep = Vec::new();
    for &b in budgets {
        let rc = RolloutConfig {
            budget: Some(b),
            ..base.clone()
        };
        let r = run_engine(&mut gen, model, problems, &rc, &bar)?;
        write_results(&dir.join(format!("budget-{b}.jsonl")), &r)?;
        sweep.push(SweepPoint::of(b as f64, &Summary::of(&r)));
    }
    let mut temps = Vec::new();
    for &t in &cfg.temperatures {
        let rc = RolloutConfig {
            sampling: SamplingParams::temperature(t),
            ..base.clone()
        };
        let r = run_engine(&mut gen, model, problems, &rc, &bar)?;
        write_results(&dir.join(format!("temperature-{t}.jsonl")), &r)?;
        temps.push(SweepPoint::of(t, &Summary::of(&r)));
    }
    let mut an = Vec::new();
    if samples > 0 {
        let rc = RolloutConfig {
            samples,
            sampling: SamplingParams::temperature(cfg.sample_temperature),
            ..base.clone()
        };
        let r = run_engine(&mut gen, model, problems, &rc, &bar)?;
        write_results(&dir.join("samples.jsonl"), &r)?;
        an = at_n(&r, samples, samples);
    }
    bar.finish_and_clear();
    let ev = ModelEval {
        name: name.into(),
        mode,
        problems: problems.len(),
        greedy,
        context,
        budgets: sweep,
        temperatures: temps,
        at_n: an,
        seconds: t0.elapsed().as_secs_f64(),
    };
    let bytes = serde_json::to_vec_pretty(&ev).map_err(|e| Error::Config(e.to_string()))?;
    apr_model::checkpoint::write_atomic(&dir.join("eval.json"), &bytes)?;
    Ok(ev)
}
