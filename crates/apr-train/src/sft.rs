//! Supervised fine-tuning (here: training from scratch) on trace sequences:
//! the data plan of each step, the loss over its micro-batches, the
//! optimiser step and the validation loss. The loop around each step (time
//! limit, metrics line, progress, checkpoints) is [`crate::run_loop`],
//! shared with GRPO.

use crate::config::{OptimConfig, SftConfig};
use crate::data::{epoch_batches, epoch_steps, load_corpus, Batch, Corpus, LossWeights};
use crate::error::{Error, Result};
use crate::grads::clip_global;
pub use crate::metrics::SftRow;
use crate::parallel::micro_batch_grads;
use crate::plot::{line_plot, Series};
use crate::run_dir;
use crate::run_loop::{self, RunLoop, Schedule};
use crate::snapshots;
use crate::state;
use apr_model::{checkpoint, AprBackend, Llama};
use apr_trace::tokenizer::PAD_ID;
use burn::module::AutodiffModule;
use burn::optim::Optimizer;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::backend::{Device as _, DeviceId};
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where training stands (saved with every checkpoint).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimiser steps done.
    pub step: usize,
    /// Current epoch.
    pub epoch: u64,
    /// Next batch of the epoch.
    pub batch: usize,
    /// Target tokens trained on.
    pub tokens: u64,
    /// Seconds of training so far.
    pub seconds: f64,
}

/// What a run did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SftSummary {
    /// Steps done in all.
    pub steps: usize,
    /// Last training loss.
    pub final_train_loss: f64,
    /// Last validation loss.
    pub final_val_loss: Option<f64>,
    /// Target tokens per second of training, this process.
    pub tokens_per_second: f64,
    /// Whether the run stopped on its time limit before `max_steps`.
    pub stopped_on_time: bool,
    /// Where the Hugging Face export is.
    pub model_dir: PathBuf,
    /// Where the mean of the last checkpoints is (`optim.average_last`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub averaged_model_dir: Option<PathBuf>,
    /// The steps of the checkpoints averaged into it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub averaged_steps: Vec<usize>,
}

/// Options that are not part of the experiment (they do not change results).
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Show a progress bar.
    pub progress: bool,
    /// Stop after this many steps of this process, as if killed right
    /// after a checkpoint (tests of resume).
    pub stop_after: Option<usize>,
}

/// Padded inputs, targets, the targets' loss weights (0 where no loss) of
/// a batch, and the weights' sum.
pub fn batch_tensors<B: Backend>(
    seqs: &[Vec<u32>],
    loss: &LossWeights,
    batch: &Batch,
    device: &B::Device,
) -> (Tensor<B, 2, Int>, Tensor<B, 3, Int>, Tensor<B, 3>, f64) {
    let n = batch.rows.len();
    let l = batch.len.saturating_sub(1).max(1);
    let (mut inp, mut tgt, mut mask) = (
        Vec::with_capacity(n * l),
        Vec::with_capacity(n * l),
        Vec::with_capacity(n * l),
    );
    let mut total = 0.0;
    for &r in &batch.rows {
        let s = &seqs[r];
        for i in 0..l {
            inp.push(s.get(i).copied().unwrap_or(PAD_ID) as i64);
            tgt.push(s.get(i + 1).copied().unwrap_or(PAD_ID) as i64);
            let w = loss.at(r, i + 1, s.len());
            mask.push(w);
            total += w as f64;
        }
    }
    (
        Tensor::from_data(TensorData::new(inp, [n, l]), device),
        Tensor::from_data(TensorData::new(tgt, [n, l, 1]), device),
        Tensor::from_data(TensorData::new(mask, [n, l, 1]), device),
        total,
    )
}

/// Weighted sum of a batch's next-token negative log-likelihoods, and the
/// weights' sum.
pub fn batch_nll<B: AprBackend>(
    model: &Llama<B>,
    seqs: &[Vec<u32>],
    loss: &LossWeights,
    batch: &Batch,
) -> (Tensor<B, 1>, f64) {
    let (inp, tgt, mask, total) = batch_tensors::<B>(seqs, loss, batch, &model.device());
    // Right padding only: the causal mask already keeps real positions
    // from seeing it, and the loss mask drops padded targets.
    let logits = model.forward(inp, None);
    let logp = apr_model::logprobs::token_logprobs(logits, tgt);
    ((logp * mask).sum().neg(), total)
}

fn validation_loss<B: AprBackend>(
    model: &Llama<B>,
    corpus: &Corpus,
    batch_tokens: usize,
) -> Option<f64> {
    if corpus.val.is_empty() {
        return None;
    }
    let lens: Vec<usize> = corpus.val.iter().map(Vec::len).collect();
    let (mut sum, mut n) = (0.0, 0.0);
    for b in epoch_batches(&lens, batch_tokens, 0, 0) {
        let (l, c) = batch_nll(model, &corpus.val, &corpus.val_loss, &b);
        let l: f64 = l.into_scalar().elem();
        sum += l;
        n += c;
    }
    Some(sum / n.max(1.0))
}

/// The token sequences of the first `n` micro-batches a run of `cfg` would
/// train on (for baselines that must see the same batches).
pub fn first_batches(cfg: &SftConfig, n: usize) -> Result<Vec<Vec<Vec<u32>>>> {
    let mc = cfg.model_config()?;
    let corpus = load_corpus(&cfg.data, cfg.optim.seed, mc.max_seq_len)?;
    let lens: Vec<usize> = corpus.train.iter().map(Vec::len).collect();
    let mut out = Vec::with_capacity(n);
    let mut epoch = 0;
    while out.len() < n {
        for b in epoch_batches(&lens, cfg.optim.batch_tokens, cfg.optim.seed, epoch) {
            if out.len() == n {
                break;
            }
            out.push(b.rows.iter().map(|&r| corpus.train[r].clone()).collect());
        }
        epoch += 1;
    }
    Ok(out)
}

/// Settings that may differ when a run resumes: they change when or
/// whether it stops, what it logs and where it is, not what it computes
/// (more steps continue the learning-rate schedule of the new count).
pub const MAY_CHANGE: &[&str] = &[
    "out",
    "optim.max_steps",
    "optim.time_limit_minutes",
    "optim.checkpoint_every",
    "optim.eval_every",
];

/// Directory of the Hugging Face export of a run.
pub fn model_dir(out: &Path) -> PathBuf {
    run_loop::model_dir(out)
}

/// The model a run hands on to what follows it: the mean of its last
/// checkpoints (`model-avg/`) when `optim.average_last` is set, else its
/// final weights (`model/`).
pub fn handed_on_model_dir(out: &Path, optim: &OptimConfig) -> PathBuf {
    match optim.average_last {
        0 => model_dir(out),
        _ => snapshots::averaged_model_dir(out),
    }
}

/// Where each optimiser step's micro-batches come from, fixed by the
/// config: `accum_steps` token-bounded batches of the epoch, or one step of
/// `batch_sequences` sequences. `TrainState::batch` counts batches in the
/// first case and steps in the second.
enum StepPlan {
    Tokens(Vec<Batch>),
    Sequences(Vec<Vec<Batch>>),
}

impl StepPlan {
    fn new(o: &OptimConfig, lens: &[usize], epoch: u64) -> StepPlan {
        match o.batch_sequences {
            None => StepPlan::Tokens(epoch_batches(lens, o.batch_tokens, o.seed, epoch)),
            Some(n) => StepPlan::Sequences(epoch_steps(lens, n, o.batch_tokens, o.seed, epoch)),
        }
    }

    /// Units of the epoch (batches or steps).
    fn len(&self) -> usize {
        match self {
            StepPlan::Tokens(b) => b.len(),
            StepPlan::Sequences(s) => s.len(),
        }
    }

    /// The micro-batches of unit `i`.
    fn unit(&self, i: usize) -> &[Batch] {
        match self {
            StepPlan::Tokens(b) => std::slice::from_ref(&b[i]),
            StepPlan::Sequences(s) => &s[i],
        }
    }

    /// The next step's micro-batches, moving to the next epoch as needed.
    fn next(
        &mut self,
        o: &OptimConfig,
        lens: &[usize],
        epoch: &mut u64,
        at: &mut usize,
    ) -> Vec<Batch> {
        let units = match self {
            StepPlan::Tokens(_) => o.accum_steps,
            StepPlan::Sequences(_) => 1,
        };
        let mut micro = Vec::with_capacity(o.accum_steps);
        for _ in 0..units {
            if *at >= self.len() {
                *epoch += 1;
                *at = 0;
                *self = StepPlan::new(o, lens, *epoch);
            }
            micro.extend_from_slice(self.unit(*at));
            *at += 1;
        }
        micro
    }
}

/// Trains per `cfg`, resuming from `cfg.out/state` when it exists.
pub fn train<B>(cfg: &SftConfig, device: &B::Device, opts: &RunOptions) -> Result<SftSummary>
where
    B: AutodiffBackend + AprBackend,
    B::InnerBackend: AprBackend,
{
    let out = &cfg.out;
    let mc = cfg.model_config()?;
    let _lock = match run_dir::begin(out, cfg, SftConfig::from_toml, MAY_CHANGE, |s| {
        s >= cfg.optim.max_steps
    })? {
        run_dir::Start::Finished(summary) => return Ok(summary),
        run_dir::Start::Run(lock) => lock,
    };

    let corpus = load_corpus(&cfg.data, cfg.optim.seed, mc.max_seq_len)?;
    let lens: Vec<usize> = corpus.train.iter().map(Vec::len).collect();
    let o = &cfg.optim;
    let fresh = TrainState {
        step: 0,
        epoch: 0,
        batch: 0,
        tokens: 0,
        seconds: 0.0,
    };
    let state::Resumed {
        mut model,
        mut optim,
        state: mut st,
        metrics,
        tokenizer_json: tok_json,
    } = state::resume(
        out,
        Llama::<B>::init(&mc, o.seed, device),
        state::adamw::<B>(o.beta1, o.beta2, o.eps, o.weight_decay),
        fresh,
        |s: &TrainState| s.step,
        device,
    )?;
    let devices = data_parallel_devices::<B>(device, o.data_parallel);
    let schedule = Schedule {
        steps: o.max_steps,
        time_limit_minutes: o.time_limit_minutes,
        checkpoint_every: o.checkpoint_every,
        keep_exports: o.average_last,
    };
    let at = (st.step, st.seconds);
    let mut run = RunLoop::new(out, opts, schedule, at, metrics, tok_json, write_plot);
    let mut plan = StepPlan::new(o, &lens, st.epoch);
    let tokens0 = st.tokens;
    let mut last_val = run.metrics().last("val_loss");

    while st.step < o.max_steps {
        // The micro-batches of this step, their target count and the
        // targets' summed loss weight (the loss is the weighted mean).
        let micro = plan.next(o, &lens, &mut st.epoch, &mut st.batch);
        let rows = || micro.iter().flat_map(|b| b.rows.iter().copied());
        let tl = &corpus.train_loss;
        let targets: usize = rows()
            .map(|r| lens[r].saturating_sub(tl.from[r].max(1)))
            .sum();
        let weight: f64 = rows().map(|r| tl.total(r, lens[r])).sum();
        let (loss_sum, mut grads) =
            micro_batch_grads(&model, &devices, &micro, |m: &Llama<B>, b: &Batch| {
                let (nll, _) = batch_nll(m, &corpus.train, tl, b);
                let loss = nll / weight.max(1e-9);
                let v: f64 = loss.clone().into_scalar().elem();
                (loss, v)
            })?;
        let norm = clip_global::<B, Llama<B>>(&model, &mut grads, o.grad_clip);
        run.guard().step(st.step + 1, loss_sum, norm)?;
        let lr = cfg.lr_at(st.step);
        model = optim.step(lr, model, grads);
        st.step += 1;
        st.tokens += targets as u64;
        let end = run.end_step(st.step);
        st.seconds = end.seconds;
        let tps = (st.tokens - tokens0) as f64 / run.seconds_here().max(1e-9);
        let val_due = (o.eval_every > 0 && st.step.is_multiple_of(o.eval_every)) || end.last;
        let mut row = SftRow {
            step: st.step,
            loss: loss_sum,
            lr,
            grad_norm: norm,
            tokens: st.tokens,
            tokens_per_s: tps,
            seconds: st.seconds,
            epoch: st.epoch,
            val_loss: None,
        };
        if val_due {
            last_val = validation_loss(&model.valid(), &corpus, o.batch_tokens);
            row.val_loss = last_val;
        }
        let msg = format!("loss {loss_sum:.3} {tps:.0} tok/s");
        if !run.finish_step(&end, &row, msg, &model, &optim, &st)? {
            break;
        }
    }
    let finished = st.step >= o.max_steps;
    let averaged = match o.average_last {
        k if k > 0 && finished => Some(snapshots::average(out, k)?),
        _ => None,
    };
    run.finish(&model, |f, metrics| SftSummary {
        steps: st.step,
        // A run resumed at its end reports the last loss it logged.
        final_train_loss: metrics.last("loss").unwrap_or(f64::NAN),
        final_val_loss: last_val,
        tokens_per_second: (st.tokens - tokens0) as f64 / f.seconds_here.max(1e-9),
        stopped_on_time: f.stopped_on_time,
        model_dir: model_dir(out),
        averaged_model_dir: averaged.as_ref().map(|(d, _)| d.clone()),
        averaged_steps: averaged.map(|(_, s)| s).unwrap_or_default(),
    })
}

/// `device` and the next `n - 1` devices of its backend (on the CPU
/// backend, which has one device, `n` times the CPU).
fn data_parallel_devices<B: Backend>(device: &B::Device, n: usize) -> Vec<B::Device> {
    let id = device.to_id();
    (0..n.max(1) as u16)
        .map(|i| B::Device::from_id(DeviceId::new(id.type_id, id.index_id + i)))
        .collect()
}

fn write_plot(out: &Path, metrics: &state::Metrics) -> Result<()> {
    let train = metrics.series("loss");
    let val = metrics.series("val_loss");
    let svg = line_plot(
        "SFT loss (nats per target token)",
        "optimiser step",
        "loss",
        &[Series::new("train", train), Series::new("validation", val)],
    );
    checkpoint::write_atomic(&out.join("loss.svg"), svg.as_bytes()).map_err(Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn optim(batch_sequences: Option<usize>, accum_steps: usize) -> OptimConfig {
        let text = format!(
            "out = \"x\"\n[model]\npreset = \"tiny\"\n[data]\ntrain = [\"a\"]\nkind = \"apr\"\n\
             conditioning = \"none\"\n[optim]\nseed = 4\nlr = 1e-3\nwarmup_steps = 0\n\
             max_steps = 10\nbatch_tokens = 100\naccum_steps = {accum_steps}\n{}",
            batch_sequences.map_or(String::new(), |n| format!("batch_sequences = {n}\n"))
        );
        SftConfig::from_toml(&text).unwrap().optim
    }

    #[test]
    fn continuation_targets_count_with_their_weight() {
        let model: Llama<apr_model::CpuTrain> = crate::test_model::micro_llama();
        let seqs = vec![vec![1, 7, 8, 9, 10, 11, 12, 2], vec![1, 20, 21, 2]];
        let batch = Batch {
            rows: vec![0, 1],
            len: 8,
        };
        let nll = |from: Vec<usize>, weighted_from: usize, weight: f32| {
            let w = LossWeights {
                from,
                weighted_from: vec![weighted_from, usize::MAX],
                weight,
            };
            let (l, total) = batch_nll(&model, &seqs, &w, &batch);
            (l.into_scalar().elem::<f64>(), total)
        };
        // Sequence 0: loss on targets 3..8, weight 4 on targets 5..8.
        let (plain, n_plain) = nll(vec![3, 0], 5, 1.0);
        let (weighted, n_weighted) = nll(vec![3, 0], 5, 4.0);
        // The continuation alone (targets 5..8 of sequence 0).
        let (cont, n_cont) = nll(vec![5, 8], usize::MAX, 1.0);
        // 5 + 3 targets; 2 + 3 x 4 + 3; 3.
        assert_eq!((n_plain, n_weighted, n_cont), (8.0, 17.0, 3.0));
        assert!(cont > 0.0);
        assert!(
            (weighted - plain - 3.0 * cont).abs() < 1e-4 * weighted,
            "{weighted} {plain} {cont}"
        );
    }

    fn rows(micro: &[Batch]) -> usize {
        micro.iter().map(|b| b.rows.len()).sum()
    }

    #[test]
    fn a_step_of_sequences_takes_exactly_that_many_then_the_next_epoch() {
        // 20 sequences of 30 tokens: 3 fit a 100-token micro-batch.
        let lens = vec![30; 20];
        let o = optim(Some(8), 1);
        let (mut epoch, mut at) = (0, 0);
        let mut plan = StepPlan::new(&o, &lens, epoch);
        let mut sizes: Vec<usize> = (0..3)
            .map(|_| rows(&plan.next(&o, &lens, &mut epoch, &mut at)))
            .collect();
        sizes.sort_unstable();
        assert_eq!(sizes, [4, 8, 8]);
        assert_eq!(epoch, 0);
        let micro = plan.next(&o, &lens, &mut epoch, &mut at);
        assert_eq!((epoch, at), (1, 1));
        assert!(micro.iter().all(|b| b.rows.len() <= 3));
        // Token mode: `accum_steps` micro-batches per step.
        let o = optim(None, 2);
        let (mut epoch, mut at) = (0, 0);
        let mut plan = StepPlan::new(&o, &lens, epoch);
        assert_eq!(plan.next(&o, &lens, &mut epoch, &mut at).len(), 2);
        assert_eq!(at, 2);
    }
}
