//! The GRPO trainer: rollouts from [`apr_rollout::Engine`] on a
//! non-autodiff copy of the policy, verifier rewards, group advantages,
//! PPO-clip on the engine's stored log-probabilities, k3 KL to the frozen
//! initial policy, several optimiser steps per rollout batch, global
//! gradient-norm clipping, validation, checkpoints with exact resume,
//! metrics and plots.
//!
//! The objective and the update are in [`crate::grpo_update`]; the loop
//! around each step (time limit, metrics line, progress, checkpoints) is
//! [`crate::run_loop`], shared with SFT.

use crate::error::{Error, Result};
use crate::grpo_config::GrpoConfig;
use crate::plot::{line_plot, Series};
use crate::run_dir;
use crate::run_loop::{self, RunLoop, Schedule};
use crate::sft::RunOptions;
use crate::state;
use apr_countdown::Problem;
use apr_model::{checkpoint, AprBackend, Llama};
use apr_rollout::{Generator, ProblemResult, RolloutConfig, SamplingParams, Summary};
use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use crate::metrics::{GrpoRow, GrpoVal, GrpoValRow};

pub use crate::grpo_update::{
    build_sequences, fill_reference, micro_batch, set_weights, update, verifier_reward, MicroBatch,
    RewardFn, Sequence, UpdateSettings, UpdateStats,
};

/// Settings that may differ when a GRPO run resumes (see
/// [`crate::sft::MAY_CHANGE`]).
pub const MAY_CHANGE: &[&str] = &[
    "out",
    "optim.steps",
    "optim.time_limit_minutes",
    "optim.checkpoint_every",
    "optim.val_every",
    "generation.server_urls",
    "generation.served_name",
    "generation.concurrency",
    "generation.timeout_s",
];

/// Where a GRPO run stands (saved with every checkpoint).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GrpoState {
    /// GRPO steps done.
    pub step: usize,
    /// Epoch over the training problems.
    pub epoch: u64,
    /// Next problem of the epoch's order.
    pub cursor: usize,
    /// Seconds so far.
    pub seconds: f64,
}

/// What a GRPO run did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GrpoSummary {
    /// Steps done in all.
    pub steps: usize,
    /// Greedy validation accuracy of the initial policy.
    pub initial_val_accuracy: Option<f64>,
    /// Greedy validation accuracy at the end.
    pub final_val_accuracy: Option<f64>,
    /// Mean training reward of the first and the last step.
    pub first_reward: f64,
    /// See `first_reward`.
    pub last_reward: f64,
    /// Whether the run stopped on its time limit before `steps`.
    pub stopped_on_time: bool,
    /// Seconds of training.
    pub seconds: f64,
    /// Where the final model is.
    pub model_dir: PathBuf,
}

/// A seeded permutation of `0..n` for an epoch.
fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut rng = apr_model::init::SplitMix::new(
        seed ^ 0x6772_706f ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    let mut v: Vec<usize> = (0..n).collect();
    crate::data::shuffle(&mut v, &mut rng);
    v
}

/// Runs `cfg` on `problems` with `model` on `gen`'s backend (which serves
/// `model`'s weights: [`Generator::sync`]).
pub fn rollout<B: AprBackend>(
    gen: &mut Generator,
    model: &Llama<B>,
    problems: &[Problem],
    cfg: &RolloutConfig,
) -> Result<Vec<ProblemResult>> {
    gen.run(model, problems, cfg, |_| {})
        .map(|r| r.0)
        .map_err(rollout_err)
}

fn rollout_err(e: apr_rollout::Error) -> Error {
    Error::Rollout(e.to_string())
}

/// Greedy validation: the summary of one greedy sample per problem under
/// the training rollout's mode, budget and limits.
pub fn validate<B: AprBackend>(
    gen: &mut Generator,
    model: &Llama<B>,
    problems: &[Problem],
    cfg: &GrpoConfig,
) -> Result<Summary> {
    let mut rc = cfg.rollout.clone();
    rc.sampling = SamplingParams::greedy();
    rc.samples = 1;
    Ok(Summary::of(&rollout(gen, model, problems, &rc)?))
}

/// The directory of a run's final model.
pub fn model_dir(out: &Path) -> PathBuf {
    run_loop::model_dir(out)
}

/// Trains per `cfg` with the verifier reward, resuming from
/// `cfg.out/state` when it exists.
pub fn train_grpo<B>(cfg: &GrpoConfig, device: &B::Device, opts: &RunOptions) -> Result<GrpoSummary>
where
    B: AutodiffBackend + AprBackend,
    B::InnerBackend: AprBackend,
{
    train_grpo_with::<B>(cfg, device, opts, &verifier_reward)
}

/// [`train_grpo`] with another reward (toy tasks, reward shaping).
pub fn train_grpo_with<B>(
    cfg: &GrpoConfig,
    device: &B::Device,
    opts: &RunOptions,
    reward: RewardFn<'_>,
) -> Result<GrpoSummary>
where
    B: AutodiffBackend + AprBackend,
    B::InnerBackend: AprBackend,
{
    cfg.validate()?;
    let out = &cfg.out;
    let _lock = match run_dir::begin(out, cfg, GrpoConfig::from_toml, MAY_CHANGE, |s| {
        s >= cfg.optim.steps
    })? {
        run_dir::Start::Finished(summary) => return Ok(summary),
        run_dir::Start::Run(lock) => lock,
    };
    let o = &cfg.optim;
    let problems = apr_countdown::read_problems(&cfg.problems, None)?;
    let val = match &cfg.val_problems {
        Some(p) => apr_countdown::read_problems(p, cfg.val_limit)?,
        None => Vec::new(),
    };
    let reference: Option<Llama<B::InnerBackend>> = if o.kl_coef > 0.0 {
        Some(apr_rollout::load_model(&cfg.init, device)?)
    } else {
        None
    };
    let fresh = GrpoState {
        step: 0,
        epoch: 0,
        cursor: 0,
        seconds: 0.0,
    };
    let state::Resumed {
        model: mut policy,
        mut optim,
        state: mut st,
        metrics,
        tokenizer_json: tok_json,
    } = state::resume(
        out,
        apr_rollout::load_model::<B>(&cfg.init, device)?,
        state::adamw::<B>(o.beta1, o.beta2, o.eps, o.weight_decay),
        fresh,
        |s: &GrpoState| s.step,
        device,
    )?;
    let schedule = Schedule {
        steps: o.steps,
        time_limit_minutes: o.time_limit_minutes,
        checkpoint_every: o.checkpoint_every,
        keep_exports: 0,
    };
    let mut generation = cfg.generation.clone();
    if generation.backend != apr_rollout::BackendKind::Native && generation.weights_dir.is_none() {
        generation.weights_dir = Some(out.join("server-weights"));
    }
    let c = &policy.config;
    let mut gen = Generator::connect(&generation, cfg.slots, c.max_seq_len, c.vocab_size)
        .map_err(rollout_err)?;
    gen.sync(&policy.valid()).map_err(rollout_err)?;
    let at = (st.step, st.seconds);
    let mut run = RunLoop::new(out, opts, schedule, at, metrics, tok_json, write_plots);
    if st.step == 0 && !val.is_empty() {
        let s = validate(&mut gen, &policy.valid(), &val, cfg)?;
        run.log(&GrpoValRow {
            step: 0,
            val: GrpoVal::of(&s),
        })?;
    }
    let mut order = epoch_order(problems.len(), o.seed, st.epoch);
    while st.step < o.steps {
        let t0 = Instant::now();
        let mut batch = Vec::with_capacity(o.batch_problems);
        while batch.len() < o.batch_problems.min(problems.len()) {
            if st.cursor >= order.len() {
                st.epoch += 1;
                st.cursor = 0;
                order = epoch_order(problems.len(), o.seed, st.epoch);
            }
            batch.push(problems[order[st.cursor]].clone());
            st.cursor += 1;
        }
        let mut rc = cfg.rollout.clone();
        rc.samples = o.group_size;
        rc.seed = o.seed.wrapping_mul(0x1000_0000_01B3) ^ (st.step as u64 + 1);
        let results = rollout(&mut gen, &policy.valid(), &batch, &rc)?;
        let rollout_s = t0.elapsed().as_secs_f64();
        let rewards: Vec<f64> = results.iter().map(reward).collect();
        let (mut seqs, zero_groups) = build_sequences(&results, &rewards, o.group_size, o);
        let t1 = Instant::now();
        let lr = cfg.lr_at(st.step);
        let settings = UpdateSettings::new(o, lr, cfg.rollout.sampling.logit_scale());
        if let Some(r) = &reference {
            fill_reference(r, &mut seqs, o.micro_batch_tokens, settings.logit_scale);
        }
        let mut first: Option<UpdateStats> = None;
        let mut last = UpdateStats::default();
        if !seqs.is_empty() {
            for _ in 0..o.inner_steps {
                let (p, s) = update(policy, &mut optim, &seqs, &settings);
                policy = p;
                run.guard().step(st.step + 1, s.loss, s.grad_norm)?;
                first.get_or_insert_with(|| s.clone());
                last = s;
            }
        }
        let update_s = t1.elapsed().as_secs_f64();
        // The servers generate the next rollouts with the updated weights.
        let t2 = Instant::now();
        gen.sync(&policy.valid()).map_err(rollout_err)?;
        let sync_s = t2.elapsed().as_secs_f64();
        let first = first.unwrap_or_default();
        st.step += 1;
        let end = run.end_step(st.step);
        st.seconds = end.seconds;
        let summary = Summary::of(&results);
        let n = results.len().max(1) as f64;
        let seq_tokens: usize = seqs.iter().map(|s| s.ids.len()).sum();
        let mut row = GrpoRow {
            step: st.step,
            reward: rewards.iter().sum::<f64>() / n,
            accuracy: summary.accuracy,
            parse_rate: summary.parse_rate,
            zero_advantage_groups: zero_groups,
            groups: results.len() / o.group_size,
            sequences: seqs.len(),
            tokens_per_sequence: seq_tokens as f64 / seqs.len().max(1) as f64,
            total_tokens: summary.mean_total_tokens,
            sequential_tokens: summary.mean_sequential_tokens,
            child_threads: summary.mean_child_threads,
            finish_reasons: summary.finish_reasons,
            loss: first.loss,
            kl: first.kl,
            clip_fraction: last.clip_fraction,
            ratio: last.ratio,
            clip_fraction_first: first.clip_fraction,
            ratio_first: first.ratio,
            grad_norm: first.grad_norm,
            lr,
            rollout_s,
            update_s,
            sync_s,
            seconds: st.seconds,
            val: None,
        };
        let val_due = (o.val_every > 0 && st.step.is_multiple_of(o.val_every)) || end.last;
        if !val.is_empty() && val_due {
            row.val = Some(GrpoVal::of(&validate(
                &mut gen,
                &policy.valid(),
                &val,
                cfg,
            )?));
        }
        let msg = format!(
            "reward {:.3} kl {:.4} {}",
            row.reward,
            first.kl,
            row.val
                .as_ref()
                .map_or(String::new(), |v| format!("val {:.3}", v.val_accuracy))
        );
        if !run.finish_step(&end, &row, msg, &policy, &optim, &st)? {
            break;
        }
    }
    run.finish(&policy, |f, metrics| {
        let rewards = metrics.series("reward");
        let vals = metrics.series("val_accuracy");
        GrpoSummary {
            steps: st.step,
            initial_val_accuracy: vals.first().filter(|p| p.0 == 0.0).map(|p| p.1),
            final_val_accuracy: vals.last().map(|p| p.1),
            first_reward: rewards.first().map_or(0.0, |p| p.1),
            last_reward: rewards.last().map_or(0.0, |p| p.1),
            stopped_on_time: f.stopped_on_time,
            seconds: st.seconds,
            model_dir: model_dir(out),
        }
    })
}

fn write_plots(out: &Path, metrics: &state::Metrics) -> Result<()> {
    let s = |name: &str, field: &str| Series::new(name, metrics.series(field));
    let svg = line_plot(
        "GRPO: reward and greedy validation accuracy",
        "GRPO step",
        "fraction",
        &[
            s("train reward (sampled)", "reward"),
            s("validation accuracy (greedy)", "val_accuracy"),
        ],
    );
    checkpoint::write_atomic(&out.join("reward.svg"), svg.as_bytes())?;
    let svg = line_plot(
        "GRPO: KL to the reference and clip fraction",
        "GRPO step",
        "value",
        &[s("k3 KL", "kl"), s("clip fraction", "clip_fraction")],
    );
    checkpoint::write_atomic(&out.join("policy.svg"), svg.as_bytes())?;
    let svg = line_plot(
        "GRPO: child threads per rollout",
        "GRPO step",
        "threads",
        &[s("child threads", "child_threads")],
    );
    checkpoint::write_atomic(&out.join("threads.svg"), svg.as_bytes()).map_err(Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_orders_are_seeded_permutations() {
        let a = epoch_order(50, 3, 0);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_eq!(a, epoch_order(50, 3, 0));
        assert_ne!(a, epoch_order(50, 3, 1));
    }
}
