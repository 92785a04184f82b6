//! The GRPO objective on a batch of rollouts: one training sequence per
//! call of every thread, the loss weights, packing into micro-batches, and
//! one optimiser step of PPO-clip with a k3 KL.
//!
//! Every call of every thread of a rollout is one training sequence: its
//! prompt (inserted by the engine: `<s>`, conditioning, the problem, a
//! child's task, a parent's pre-spawn text and join block) carries no loss;
//! the tokens the model generated in that call do, with the rollout's
//! advantage.
//!
//! The loss is weighted as the reference's `compute_grpo_loss` by default
//! ([`LossAggregation::SequenceMean`]): a sequence contributes the mean
//! over its tokens of the PPO-clip term divided by the number of sequences
//! of its rollout, plus `kl_coef` times the mean over its tokens of the k3
//! KL (not divided); the sum is divided by the number of sequences in the
//! batch. Each token carries these two weights ([`Sequence::pg_weight`],
//! [`Sequence::kl_weight`]).
//!
//! The frozen reference's log-probabilities are computed once per rollout
//! batch ([`fill_reference`]) and read by every inner step: they do not
//! change between the inner steps, so one forward pass serves them all.

use crate::grads::clip_global;
use crate::grpo::{group_advantages, k3_kl, ppo_clip_token, LossAggregation};
use apr_model::{AprBackend, Llama};
use apr_rollout::ProblemResult;
use apr_trace::tokenizer::PAD_ID;
use burn::optim::{GradientsAccumulator, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// A reward: one number per rollout (problem sample).
pub type RewardFn<'a> = &'a dyn Fn(&ProblemResult) -> f64;

/// The paper's reward: 1 when the root's answer verifies, else 0.
pub fn verifier_reward(r: &ProblemResult) -> f64 {
    if r.solved {
        1.0
    } else {
        0.0
    }
}

/// One training sequence: a call's tokens and what its loss needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Sequence {
    /// Prompt then generated tokens.
    pub ids: Vec<u32>,
    /// Tokens inserted by the engine (no loss).
    pub prompt_len: usize,
    /// Log-probabilities of the generated tokens at rollout time.
    pub old_logprobs: Vec<f32>,
    /// The rollout's advantage.
    pub advantage: f32,
    /// Sequences its rollout contributes (the reference's
    /// `seq_per_rollout`).
    pub seq_per_rollout: usize,
    /// Weight of each generated token's PPO-clip loss.
    pub pg_weight: f32,
    /// Weight of each generated token's KL loss.
    pub kl_weight: f32,
    /// Log-probabilities of the generated tokens under the frozen
    /// reference ([`fill_reference`]); `None` until filled.
    pub ref_logprobs: Option<Vec<f32>>,
}

/// Sets every sequence's token weights for `how` in the batch `seqs`
/// ([`LossAggregation::weights`]).
pub fn set_weights(seqs: &mut [Sequence], how: LossAggregation) {
    let n = seqs.len();
    let tokens: usize = seqs.iter().map(|s| s.old_logprobs.len()).sum();
    for s in seqs {
        let w = how.weights(s.old_logprobs.len(), s.seq_per_rollout, n, tokens);
        s.pg_weight = w.pg as f32;
        s.kl_weight = w.kl as f32;
    }
}

/// The training sequences of a rollout batch. `results` come in (problem,
/// sample) order, `group` samples per problem; `rewards` one per result.
/// Returns the sequences and the number of zero-advantage groups.
pub fn build_sequences(
    results: &[ProblemResult],
    rewards: &[f64],
    group: usize,
    cfg: &crate::grpo_config::GrpoOptim,
) -> (Vec<Sequence>, usize) {
    let mut seqs = Vec::new();
    let mut zero_groups = 0;
    for (rs, rw) in results.chunks(group).zip(rewards.chunks(group)) {
        let adv = group_advantages(rw, cfg.normalize_std, cfg.std_eps);
        let zero = adv.iter().all(|a| *a == 0.0);
        zero_groups += zero as usize;
        if zero && cfg.filter_zero_advantage {
            continue;
        }
        for (r, a) in rs.iter().zip(&adv) {
            let first = seqs.len();
            for t in r.root.threads() {
                for c in &t.calls {
                    if c.generated_ids.is_empty() {
                        continue;
                    }
                    let mut ids = c.prompt_ids.clone();
                    ids.extend_from_slice(&c.generated_ids);
                    seqs.push(Sequence {
                        ids,
                        prompt_len: c.prompt_ids.len(),
                        old_logprobs: c.logprobs.clone(),
                        advantage: *a as f32,
                        seq_per_rollout: 0,
                        pg_weight: 0.0,
                        kl_weight: 0.0,
                        ref_logprobs: None,
                    });
                }
            }
            // The sequences this rollout contributes (calls that generated
            // a token); the reference counts every LLM call of the rollout.
            let spr = seqs.len() - first;
            for s in &mut seqs[first..] {
                s.seq_per_rollout = spr;
            }
        }
    }
    set_weights(&mut seqs, cfg.aggregation);
    (seqs, zero_groups)
}

/// Host arrays of a micro-batch: inputs, targets, and per target position
/// the old log-probability, the advantage and the two loss weights (0 on
/// prompt and padding positions, so inserted tokens carry no loss).
#[derive(Clone, Debug, PartialEq)]
pub struct MicroBatch {
    /// Rows.
    pub rows: usize,
    /// Positions per row (longest sequence minus one).
    pub len: usize,
    /// Input ids, `rows x len`.
    pub inputs: Vec<i64>,
    /// Target ids, `rows x len`.
    pub targets: Vec<i64>,
    /// Old log-probabilities at target positions.
    pub old: Vec<f32>,
    /// Advantages.
    pub adv: Vec<f32>,
    /// PPO-clip loss weights.
    pub pg_weight: Vec<f32>,
    /// KL loss weights.
    pub kl_weight: Vec<f32>,
    /// 1 on generated-token positions, 0 elsewhere.
    pub live: Vec<f32>,
    /// Reference log-probabilities at target positions, when every
    /// sequence of the batch has them.
    pub reference: Option<Vec<f32>>,
}

/// Lays out `seqs` as one right-padded micro-batch. Target position `i`
/// predicts token `i + 1`: generated token `j` of a sequence with prompt
/// length `p` is the target at position `p + j - 1`.
pub fn micro_batch(seqs: &[&Sequence]) -> MicroBatch {
    let len = seqs
        .iter()
        .map(|s| s.ids.len())
        .max()
        .unwrap_or(1)
        .saturating_sub(1)
        .max(1);
    let rows = seqs.len();
    let mut b = MicroBatch {
        rows,
        len,
        inputs: vec![PAD_ID as i64; rows * len],
        targets: vec![PAD_ID as i64; rows * len],
        old: vec![0.0; rows * len],
        adv: vec![0.0; rows * len],
        pg_weight: vec![0.0; rows * len],
        kl_weight: vec![0.0; rows * len],
        live: vec![0.0; rows * len],
        reference: None,
    };
    let mut reference = seqs
        .iter()
        .all(|s| s.ref_logprobs.is_some())
        .then(|| vec![0.0; rows * len]);
    for (r, s) in seqs.iter().enumerate() {
        let o = r * len;
        for i in 0..s.ids.len().saturating_sub(1) {
            b.inputs[o + i] = s.ids[i] as i64;
            b.targets[o + i] = s.ids[i + 1] as i64;
        }
        for (j, lp) in s.old_logprobs.iter().enumerate() {
            let i = o + s.prompt_len + j - 1;
            b.old[i] = *lp;
            b.adv[i] = s.advantage;
            b.pg_weight[i] = s.pg_weight;
            b.kl_weight[i] = s.kl_weight;
            b.live[i] = 1.0;
        }
        if let (Some(out), Some(lp)) = (&mut reference, &s.ref_logprobs) {
            for (j, v) in lp.iter().enumerate() {
                out[o + s.prompt_len + j - 1] = *v;
            }
        }
    }
    b.reference = reference;
    b
}

/// Groups sequence indices into micro-batches of at most `tokens` padded
/// tokens (sorted by length so rows of a batch are alike).
fn pack(seqs: &[Sequence], tokens: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..seqs.len()).collect();
    order.sort_by_key(|&i| seqs[i].ids.len());
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    for i in order {
        let l = seqs[i].ids.len();
        if !cur.is_empty() && (cur.len() + 1) * l > tokens {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(i);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Log-probabilities of every target of `b` under `model` with its logits
/// multiplied by `scale` (1: the model's own distribution), `[rows, len]`.
fn target_logprobs<B: AprBackend>(model: &Llama<B>, b: &MicroBatch, scale: f64) -> Tensor<B, 2> {
    let dev = model.device();
    let inp =
        Tensor::<B, 2, Int>::from_data(TensorData::new(b.inputs.clone(), [b.rows, b.len]), &dev);
    let tgt = Tensor::<B, 3, Int>::from_data(
        TensorData::new(b.targets.clone(), [b.rows, b.len, 1]),
        &dev,
    );
    let mut logits = model.forward(inp, None);
    if scale != 1.0 {
        logits = logits.mul_scalar(scale);
    }
    apr_model::logprobs::token_logprobs(logits, tgt).reshape([b.rows, b.len])
}

fn host(t: Tensor<impl Backend, 2>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec().unwrap_or_default()
}

/// Sets every sequence's [`Sequence::ref_logprobs`] from the frozen
/// `reference` at logit scale `logit_scale`, in the micro-batches of
/// `micro_batch_tokens` that [`update`] uses, so the values are the ones a
/// per-step forward pass would give.
pub fn fill_reference<R: AprBackend>(
    reference: &Llama<R>,
    seqs: &mut [Sequence],
    micro_batch_tokens: usize,
    logit_scale: f64,
) {
    for idx in pack(seqs, micro_batch_tokens) {
        let b = micro_batch(&idx.iter().map(|&i| &seqs[i]).collect::<Vec<_>>());
        let lp = host(target_logprobs(reference, &b, logit_scale));
        for (r, &i) in idx.iter().enumerate() {
            let s = &mut seqs[i];
            let at = r * b.len + s.prompt_len - 1;
            s.ref_logprobs = Some(lp[at..at + s.old_logprobs.len()].to_vec());
        }
    }
}

/// Statistics of one optimiser step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateStats {
    /// The loss (aggregated).
    pub loss: f64,
    /// Mean k3 KL to the reference over generated tokens (0 without one).
    pub kl: f64,
    /// Share of generated tokens whose clipped branch was taken, at the
    /// policy before the step.
    pub clip_fraction: f64,
    /// Mean policy ratio over generated tokens, at the policy before the
    /// step.
    pub ratio: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
}

/// The settings of one [`update`]: the objective's and the step's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpdateSettings {
    /// PPO clip range: ratios outside `1 ± clip_eps` are clipped.
    pub clip_eps: f64,
    /// Weight of the k3 KL to the reference (0: no KL term).
    pub kl_coef: f64,
    /// Global gradient-norm clip.
    pub grad_clip: f64,
    /// Padded tokens per micro-batch.
    pub micro_batch_tokens: usize,
    /// Learning rate of the step.
    pub lr: f64,
    /// Factor on the logits of the policy and the reference: the rollouts'
    /// [`apr_rollout::SamplingParams::logit_scale`], so that the trained
    /// log-probabilities are the ones the engine recorded.
    pub logit_scale: f64,
}

impl UpdateSettings {
    /// The settings of a run's `optim` section at learning rate `lr`, with
    /// the rollouts' logit scale.
    pub fn new(o: &crate::grpo_config::GrpoOptim, lr: f64, logit_scale: f64) -> UpdateSettings {
        UpdateSettings {
            clip_eps: o.clip_eps,
            kl_coef: o.kl_coef,
            grad_clip: o.grad_clip,
            micro_batch_tokens: o.micro_batch_tokens,
            lr,
            logit_scale,
        }
    }
}

/// One optimiser step of the GRPO objective on `seqs`, with the KL term to
/// the reference log-probabilities that [`fill_reference`] stored (none
/// when they are absent or `kl_coef` is 0): returns the updated policy and
/// the step's statistics.
pub fn update<B, O>(
    policy: Llama<B>,
    optim: &mut O,
    seqs: &[Sequence],
    settings: &UpdateSettings,
) -> (Llama<B>, UpdateStats)
where
    B: AutodiffBackend + AprBackend,
    O: Optimizer<Llama<B>, B>,
{
    let UpdateSettings {
        clip_eps,
        kl_coef,
        grad_clip,
        micro_batch_tokens,
        lr,
        logit_scale,
    } = *settings;
    let dev = policy.device();
    let mut acc = GradientsAccumulator::<Llama<B>>::new();
    let mut st = UpdateStats::default();
    let (mut tokens, mut clipped, mut ratio_sum, mut kl_sum) = (0usize, 0usize, 0.0, 0.0);
    for idx in pack(seqs, micro_batch_tokens) {
        let b = micro_batch(&idx.iter().map(|&i| &seqs[i]).collect::<Vec<_>>());
        let shape = [b.rows, b.len];
        let f = |v: &Vec<f32>| Tensor::<B, 2>::from_data(TensorData::new(v.clone(), shape), &dev);
        let (old, adv) = (f(&b.old), f(&b.adv));
        let logp = target_logprobs(&policy, &b, logit_scale);
        let ratio = (logp.clone() - old).exp();
        let surr1 = ratio.clone() * adv.clone();
        let surr2 = ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * adv;
        let mut loss = (surr1.min_pair(surr2).neg() * f(&b.pg_weight)).sum();
        let ref_host = b.reference.as_ref().filter(|_| kl_coef > 0.0);
        if let Some(rl) = ref_host {
            // Zero the log-ratio off the generated tokens before `exp`: a
            // padding position's would otherwise be free to overflow, and
            // inf * weight 0 is NaN.
            let d = (f(rl) - logp.clone()) * f(&b.live);
            let kl = d.clone().exp() - d - 1.0;
            loss = loss + (kl * f(&b.kl_weight)).sum() * kl_coef;
        }
        let lp = host(logp.clone().detach().inner());
        for (i, on) in b.live.iter().enumerate() {
            if *on == 0.0 {
                continue;
            }
            let (_, c) = ppo_clip_token(lp[i] as f64, b.old[i] as f64, b.adv[i] as f64, clip_eps);
            tokens += 1;
            clipped += c as usize;
            ratio_sum += (lp[i] as f64 - b.old[i] as f64).exp();
            if let Some(rl) = ref_host {
                kl_sum += k3_kl(lp[i] as f64, rl[i] as f64);
            }
        }
        st.loss += loss.clone().into_scalar().elem::<f64>();
        let g = GradientsParams::from_grads(loss.backward(), &policy);
        acc.accumulate(&policy, g);
    }
    let mut grads = acc.grads();
    st.grad_norm = clip_global::<B, Llama<B>>(&policy, &mut grads, grad_clip);
    let n = tokens.max(1) as f64;
    st.kl = kl_sum / n;
    st.clip_fraction = clipped as f64 / n;
    st.ratio = ratio_sum / n;
    (optim.step(lr, policy, grads), st)
}

#[cfg(test)]
mod tests;
