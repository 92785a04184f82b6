//! Supervised fine-tuning (here: training from scratch) on trace sequences.

use crate::config::SftConfig;
use crate::data::{epoch_batches, load_corpus, Batch, Corpus};
use crate::error::{Error, Result};
use crate::grads::clip_global;
use crate::parallel::micro_batch_grads;
use crate::plot::{line_plot, Series};
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
use std::time::Instant;

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

/// Padded inputs, targets and the target mask of a batch.
pub fn batch_tensors<B: Backend>(
    seqs: &[Vec<u32>],
    from: &[usize],
    batch: &Batch,
    device: &B::Device,
) -> (Tensor<B, 2, Int>, Tensor<B, 3, Int>, Tensor<B, 3>, usize) {
    let n = batch.rows.len();
    let l = batch.len.saturating_sub(1).max(1);
    let (mut inp, mut tgt, mut mask) = (
        Vec::with_capacity(n * l),
        Vec::with_capacity(n * l),
        Vec::with_capacity(n * l),
    );
    let mut count = 0;
    for &r in &batch.rows {
        let s = &seqs[r];
        let first = from.get(r).copied().unwrap_or(0);
        for i in 0..l {
            inp.push(s.get(i).copied().unwrap_or(PAD_ID) as i64);
            let t = s.get(i + 1).copied();
            tgt.push(t.unwrap_or(PAD_ID) as i64);
            let on = t.is_some() && i + 1 >= first;
            mask.push(if on { 1.0f32 } else { 0.0 });
            count += on as usize;
        }
    }
    (
        Tensor::from_data(TensorData::new(inp, [n, l]), device),
        Tensor::from_data(TensorData::new(tgt, [n, l, 1]), device),
        Tensor::from_data(TensorData::new(mask, [n, l, 1]), device),
        count,
    )
}

/// Summed next-token negative log-likelihood of a batch and its target count.
pub fn batch_nll<B: AprBackend>(
    model: &Llama<B>,
    seqs: &[Vec<u32>],
    from: &[usize],
    batch: &Batch,
) -> (Tensor<B, 1>, usize) {
    let (inp, tgt, mask, count) = batch_tensors::<B>(seqs, from, batch, &model.device());
    // Right padding only: the causal mask already keeps real positions
    // from seeing it, and the loss mask drops padded targets.
    let logits = model.forward(inp, None);
    let logp = apr_model::logprobs::token_logprobs(logits, tgt);
    ((logp * mask).sum().neg(), count)
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
    let (mut sum, mut n) = (0.0, 0usize);
    for b in epoch_batches(&lens, batch_tokens, 0, 0) {
        let (l, c) = batch_nll(model, &corpus.val, &corpus.val_from, &b);
        let l: f64 = l.into_scalar().elem();
        sum += l;
        n += c;
    }
    Some(sum / n.max(1) as f64)
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

fn state_dir(out: &Path) -> PathBuf {
    out.join("state")
}

/// Directory of the Hugging Face export of a run.
pub fn model_dir(out: &Path) -> PathBuf {
    out.join("model")
}

/// Trains per `cfg`, resuming from `cfg.out/state` when it exists.
pub fn train<B>(cfg: &SftConfig, device: &B::Device, opts: &RunOptions) -> Result<SftSummary>
where
    B: AutodiffBackend + AprBackend,
    B::InnerBackend: AprBackend,
{
    let out = &cfg.out;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let mc = cfg.model_config()?;
    // The config is saved next to the results.
    let saved = toml::to_string_pretty(cfg).map_err(|e| Error::Config(e.to_string()))?;
    checkpoint::write_atomic(&out.join("config.toml"), saved.as_bytes())?;

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
        mut metrics,
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
    let sdir = state_dir(out);
    let bar = state::progress(opts.progress, o.max_steps as u64, st.step as u64);
    let mut batches = epoch_batches(&lens, o.batch_tokens, o.seed, st.epoch);
    let start = Instant::now();
    let seconds0 = st.seconds;
    let tokens0 = st.tokens;
    let mut last_loss = f64::NAN;
    let mut last_val = metrics
        .rows
        .iter()
        .rev()
        .find_map(|m| m["val_loss"].as_f64());
    let mut steps_here = 0;
    let mut stopped_on_time = false;

    while st.step < o.max_steps {
        // The micro-batches of this step, and their target count.
        let mut micro = Vec::with_capacity(o.accum_steps);
        for _ in 0..o.accum_steps {
            if st.batch >= batches.len() {
                st.epoch += 1;
                st.batch = 0;
                batches = epoch_batches(&lens, o.batch_tokens, o.seed, st.epoch);
            }
            micro.push(batches[st.batch].clone());
            st.batch += 1;
        }
        let targets: usize = micro
            .iter()
            .map(|b| {
                b.rows
                    .iter()
                    .map(|&r| lens[r].saturating_sub(corpus.train_from[r].max(1)))
                    .sum::<usize>()
            })
            .sum();
        let (loss_sum, mut grads) =
            micro_batch_grads(&model, &devices, &micro, |m: &Llama<B>, b: &Batch| {
                let (nll, _) = batch_nll(m, &corpus.train, &corpus.train_from, b);
                let loss = nll / targets.max(1) as f64;
                let v: f64 = loss.clone().into_scalar().elem();
                (loss, v)
            })?;
        let norm = clip_global::<B, Llama<B>>(&model, &mut grads, o.grad_clip);
        let lr = cfg.lr_at(st.step);
        model = optim.step(lr, model, grads);
        st.step += 1;
        steps_here += 1;
        st.tokens += targets as u64;
        st.seconds = seconds0 + start.elapsed().as_secs_f64();
        last_loss = loss_sum;
        let tps = (st.tokens - tokens0) as f64 / start.elapsed().as_secs_f64().max(1e-9);
        let mut m = serde_json::json!({
            "step": st.step, "loss": loss_sum, "lr": lr, "grad_norm": norm,
            "tokens": st.tokens, "tokens_per_s": tps, "seconds": st.seconds, "epoch": st.epoch,
        });
        let time_up = o.time_limit_minutes.is_some_and(|t| st.seconds >= t * 60.0);
        let last = st.step == o.max_steps || time_up;
        if (o.eval_every > 0 && st.step.is_multiple_of(o.eval_every)) || last {
            last_val = validation_loss(&model.valid(), &corpus, o.batch_tokens);
            m["val_loss"] = serde_json::json!(last_val);
        }
        metrics.push(m)?;
        bar.set_position(st.step as u64);
        bar.set_message(format!("loss {loss_sum:.3} {tps:.0} tok/s"));
        let stop_here = opts.stop_after.is_some_and(|n| steps_here >= n);
        if state::checkpoint_due(st.step, o.checkpoint_every, last || stop_here) {
            let mdir = model_dir(out);
            state::save_run(&sdir, &mdir, &model, optim.to_record(), &st, &tok_json)?;
            write_plot(out, &metrics)?;
        }
        if time_up {
            stopped_on_time = st.step < o.max_steps;
            break;
        }
        if stop_here {
            break;
        }
    }
    bar.finish_and_clear();
    let mdir = model_dir(out);
    // Every step loop ends with a checkpoint, which exports the model; a
    // run resumed at its last step exports only when the export is missing.
    if steps_here == 0 && !mdir.exists() {
        checkpoint::save(&model.valid(), &mdir, Some(&tok_json))?;
        write_plot(out, &metrics)?;
    }
    let summary = SftSummary {
        steps: st.step,
        final_train_loss: last_loss,
        final_val_loss: last_val,
        tokens_per_second: (st.tokens - tokens0) as f64 / start.elapsed().as_secs_f64().max(1e-9),
        stopped_on_time,
        model_dir: mdir,
    };
    state::write_json(&out.join("summary.json"), &summary)?;
    Ok(summary)
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
        &[
            Series {
                name: "train".into(),
                points: train,
            },
            Series {
                name: "validation".into(),
                points: val,
            },
        ],
    );
    checkpoint::write_atomic(&out.join("loss.svg"), svg.as_bytes()).map_err(Error::from)
}
