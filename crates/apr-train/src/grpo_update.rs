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
    };
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
    }
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

/// One optimiser step of the GRPO objective on `seqs`, with the frozen
/// `reference` for the KL term: returns the updated policy and the step's
/// statistics.
pub fn update<B, O>(
    policy: Llama<B>,
    reference: Option<&Llama<B::InnerBackend>>,
    optim: &mut O,
    seqs: &[Sequence],
    settings: &UpdateSettings,
) -> (Llama<B>, UpdateStats)
where
    B: AutodiffBackend + AprBackend,
    B::InnerBackend: AprBackend,
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
        let ref_host = reference.map(|r| host(target_logprobs(r, &b, logit_scale)));
        if let (Some(rl), true) = (&ref_host, kl_coef > 0.0) {
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
            if let Some(rl) = &ref_host {
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
mod tests {
    use super::*;
    use burn::module::AutodiffModule;

    fn seq(ids: &[u32], prompt_len: usize, adv: f32) -> Sequence {
        Sequence {
            ids: ids.to_vec(),
            prompt_len,
            old_logprobs: vec![-0.5; ids.len() - prompt_len],
            advantage: adv,
            seq_per_rollout: 1,
            pg_weight: 0.25,
            kl_weight: 0.5,
        }
    }

    #[test]
    fn only_generated_tokens_carry_loss() {
        // Row 0: prompt [1, 7, 8], generated [9, 2]; row 1: prompt [1],
        // generated [5]. Positions predict the next token.
        let a = seq(&[1, 7, 8, 9, 2], 3, 1.5);
        let b = seq(&[1, 5], 1, -1.0);
        let m = micro_batch(&[&a, &b]);
        assert_eq!((m.rows, m.len), (2, 4));
        let p = PAD_ID as i64;
        assert_eq!(m.inputs, vec![1, 7, 8, 9, 1, p, p, p]);
        assert_eq!(m.targets, vec![7, 8, 9, 2, 5, p, p, p]);
        // Targets 9 and 2 (positions 2, 3) of row 0 and 5 (position 0) of
        // row 1 are generated; the prompt's 7 and 8 are not.
        assert_eq!(m.pg_weight, vec![0.0, 0.0, 0.25, 0.25, 0.25, 0.0, 0.0, 0.0]);
        assert_eq!(m.kl_weight, vec![0.0, 0.0, 0.5, 0.5, 0.5, 0.0, 0.0, 0.0]);
        assert_eq!(m.live, vec![0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
        assert_eq!(m.adv, vec![0.0, 0.0, 1.5, 1.5, -1.0, 0.0, 0.0, 0.0]);
        assert_eq!(m.old, vec![0.0, 0.0, -0.5, -0.5, -0.5, 0.0, 0.0, 0.0]);
    }

    /// Rollout A (advantage +1) gave one sequence, rollout B (-1) three.
    fn two_rollouts() -> Vec<Sequence> {
        let mut v = vec![seq(&[1, 7, 8, 9], 2, 1.0)];
        v[0].seq_per_rollout = 1;
        for ids in [&[1, 5, 6][..], &[1, 7, 5, 6, 9], &[1, 9]] {
            let mut s = seq(ids, 1, -1.0);
            s.seq_per_rollout = 3;
            v.push(s);
        }
        v
    }

    #[test]
    fn weights_follow_the_reference() {
        let mut s = two_rollouts();
        set_weights(&mut s, LossAggregation::SequenceMean);
        // Policy 1 / (len * seq_per_rollout * 4), KL 1 / (len * 4).
        let w: Vec<(f32, f32)> = s.iter().map(|s| (s.pg_weight, s.kl_weight)).collect();
        assert_eq!(
            w,
            vec![
                (1.0 / 8.0, 1.0 / 8.0),
                (1.0 / 24.0, 1.0 / 8.0),
                (1.0 / 48.0, 1.0 / 16.0),
                (1.0 / 12.0, 1.0 / 4.0),
            ]
        );
        // Ratio 1: each token's PPO-clip loss is -A; per rollout the
        // policy terms cancel (-1 + 3 * 1/3), so the policy loss is 0. A
        // weight of 1 / (len * 4) alone would give (-1 + 3) / 4.
        let pg: f64 = s
            .iter()
            .flat_map(|s| {
                s.old_logprobs.iter().map(|lp| {
                    let (l, _) = ppo_clip_token(*lp as f64, *lp as f64, s.advantage as f64, 0.2);
                    l * s.pg_weight as f64
                })
            })
            .sum();
        assert!(pg.abs() < 1e-7, "{pg}");
        set_weights(&mut s, LossAggregation::TokenMean);
        // Both 1 / 9 generated tokens.
        let t = (1.0f64 / 9.0) as f32;
        assert!(s.iter().all(|s| (s.pg_weight, s.kl_weight) == (t, t)));
    }

    /// One update of the two-rollout batch whose old log-probabilities
    /// come from the policy at logit scale `old_scale`, trained at `scale`.
    fn update_from_own_logprobs(old_scale: f64, scale: f64) -> UpdateStats {
        type B = apr_model::CpuTrain;
        let policy: Llama<B> = crate::test_model::micro_llama();
        let mut s = two_rollouts();
        for q in &mut s {
            let b = micro_batch(&[&*q]);
            let lp = host(target_logprobs(&policy.valid(), &b, old_scale));
            q.old_logprobs = (0..q.old_logprobs.len())
                .map(|j| lp[q.prompt_len + j - 1])
                .collect();
        }
        set_weights(&mut s, LossAggregation::SequenceMean);
        let mut optim = crate::state::adamw::<B>(0.9, 0.999, 1e-8, 0.0);
        let settings = UpdateSettings {
            clip_eps: 0.2,
            kl_coef: 0.0,
            grad_clip: 1.0,
            micro_batch_tokens: 64,
            lr: 1e-3,
            logit_scale: scale,
        };
        update(policy, None, &mut optim, &s, &settings).1
    }

    #[test]
    fn update_at_ratio_one_has_no_policy_loss_across_rollouts() {
        // Old log-probabilities from the policy itself, at temperature 1
        // and at the tempered scale 1 / 0.5: ratio 1 either way.
        for scale in [1.0, 2.0] {
            let st = update_from_own_logprobs(scale, scale);
            assert!(st.loss.abs() < 1e-5, "{st:?}");
            assert!((st.ratio - 1.0).abs() < 1e-5, "{st:?}");
            assert_eq!(st.clip_fraction, 0.0);
        }
        // Recorded at temperature 1, trained tempered: not the same policy.
        let st = update_from_own_logprobs(1.0, 2.0);
        assert!((st.ratio - 1.0).abs() > 1e-3, "{st:?}");
    }

    #[test]
    fn packing_respects_the_token_budget() {
        let s: Vec<Sequence> = [5, 3, 9, 4]
            .iter()
            .map(|&n| seq(&vec![1; n], 1, 0.0))
            .collect();
        // Sorted by length 3, 4, 5, 9: (3, 4) pads to 8 <= 10; adding 5
        // would pad to 15.
        assert_eq!(pack(&s, 10), vec![vec![1, 3], vec![0], vec![2]]);
        assert_eq!(pack(&s, 100), vec![vec![1, 3, 0, 2]]);
    }
}
