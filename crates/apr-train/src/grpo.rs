//! GRPO's arithmetic on plain numbers: group advantages, the PPO-clip
//! objective per token, the k3 KL estimate, and the two loss aggregations
//! (the weights of each token's policy and KL terms).
//! The trainer (issue 5) applies the same formulas to tensors; these host
//! versions define them and are tested on hand-computed values.

/// Group-relative advantages: each reward minus its group's mean, divided
/// by the group's standard deviation (population form) plus `eps` when
/// `normalize_std`. A group whose rewards are all equal gets zeros.
pub fn group_advantages(rewards: &[f64], normalize_std: bool, eps: f64) -> Vec<f64> {
    if rewards.is_empty() {
        return Vec::new();
    }
    let n = rewards.len() as f64;
    let mean = rewards.iter().sum::<f64>() / n;
    let std = (rewards.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n).sqrt();
    rewards
        .iter()
        .map(|r| {
            let a = r - mean;
            if normalize_std {
                a / (std + eps)
            } else {
                a
            }
        })
        .collect()
}

/// One token's PPO-clip term: `-min(ratio * A, clip(ratio, 1-e, 1+e) * A)`
/// with `ratio = exp(logp - old_logp)`. Returns the loss and whether the
/// clipped branch was taken (for the clip fraction).
pub fn ppo_clip_token(logp: f64, old_logp: f64, advantage: f64, clip_eps: f64) -> (f64, bool) {
    let ratio = (logp - old_logp).exp();
    let unclipped = ratio * advantage;
    let clipped = ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * advantage;
    (-unclipped.min(clipped), clipped < unclipped)
}

/// The k3 estimate of KL(policy || reference) at one token:
/// `exp(ref - logp) - (ref - logp) - 1`, non-negative.
pub fn k3_kl(logp: f64, ref_logp: f64) -> f64 {
    let d = ref_logp - logp;
    d.exp() - d - 1.0
}

/// How per-token losses become the batch loss. The policy (PPO-clip) and
/// KL terms are weighted apart: see [`LossAggregation::weights`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossAggregation {
    /// The reference (`compute_grpo_loss`): per sequence, the mean over its
    /// tokens of the policy term divided by the number of sequences of its
    /// own rollout, plus `kl_coef` times the mean over its tokens of the KL
    /// (not divided); summed over sequences and divided by the number of
    /// sequences in the batch. Each rollout thus has the same policy weight
    /// however many threads it ran.
    SequenceMean,
    /// The mean over all tokens of all sequences, for both terms (no
    /// per-rollout division).
    TokenMean,
}

/// The weights of one generated token's policy and KL losses in the batch
/// loss: `loss = sum(pg * pg_weight + kl_coef * kl * kl_weight)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenWeights {
    /// Weight of the PPO-clip term.
    pub pg: f64,
    /// Weight of the k3 KL term.
    pub kl: f64,
}

impl LossAggregation {
    /// The weights of the tokens of a sequence of `len` generated tokens
    /// whose rollout contributes `seq_per_rollout` sequences, in a batch of
    /// `sequences` sequences and `tokens` generated tokens.
    /// [`SequenceMean`](Self::SequenceMean): policy `1 / (len *
    /// seq_per_rollout * sequences)`, KL `1 / (len * sequences)`;
    /// [`TokenMean`](Self::TokenMean): both `1 / tokens`. Zero counts are
    /// taken as 1 (no division by zero).
    pub fn weights(
        self,
        len: usize,
        seq_per_rollout: usize,
        sequences: usize,
        tokens: usize,
    ) -> TokenWeights {
        let n = |x: usize| x.max(1) as f64;
        match self {
            LossAggregation::SequenceMean => {
                let kl = 1.0 / (n(len) * n(sequences));
                TokenWeights {
                    pg: kl / n(seq_per_rollout),
                    kl,
                }
            }
            LossAggregation::TokenMean => {
                let w = 1.0 / n(tokens);
                TokenWeights { pg: w, kl: w }
            }
        }
    }
}

/// One sequence's per-token losses (generated tokens only) for
/// [`batch_loss`].
#[derive(Clone, Debug, PartialEq)]
pub struct SeqLosses {
    /// PPO-clip loss of each token.
    pub pg: Vec<f64>,
    /// k3 KL of each token (same length as `pg`).
    pub kl: Vec<f64>,
    /// Sequences of this sequence's rollout.
    pub seq_per_rollout: usize,
}

/// The batch loss of `seqs` under `how` (the host form of what the trainer
/// computes on tensors). `batch_sequences` is the number of sequences in
/// the whole batch, which may exceed `seqs.len()` when it is split into
/// micro-batches.
pub fn batch_loss(
    seqs: &[SeqLosses],
    how: LossAggregation,
    kl_coef: f64,
    batch_sequences: usize,
) -> f64 {
    let tokens: usize = seqs.iter().map(|s| s.pg.len()).sum();
    seqs.iter()
        .map(|s| {
            let w = how.weights(s.pg.len(), s.seq_per_rollout, batch_sequences, tokens);
            let pg: f64 = s.pg.iter().sum();
            let kl: f64 = s.kl.iter().sum();
            pg * w.pg + kl_coef * kl * w.kl
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} vs {b}");
    }

    #[test]
    fn advantages_by_hand() {
        // Rewards 1, 0, 0, 1: mean 0.5, population std 0.5.
        let a = group_advantages(&[1.0, 0.0, 0.0, 1.0], true, 0.0);
        for (x, y) in a.iter().zip([1.0, -1.0, -1.0, 1.0]) {
            close(*x, y);
        }
        let a = group_advantages(&[1.0, 0.0, 0.0, 1.0], false, 0.0);
        for (x, y) in a.iter().zip([0.5, -0.5, -0.5, 0.5]) {
            close(*x, y);
        }
        // All equal: zero advantages, no division by zero.
        assert_eq!(group_advantages(&[1.0; 3], true, 1e-6), vec![0.0; 3]);
    }

    #[test]
    fn ppo_clip_by_hand() {
        // ratio = e^0.5 = 1.6487, A = 2, eps 0.2: min(3.2974, 1.2 * 2) = 2.4, clipped.
        let (l, c) = ppo_clip_token(0.5, 0.0, 2.0, 0.2);
        close(l, -2.4);
        assert!(c);
        // Negative advantage: min(1.6487 * -1, 1.2 * -1) = -1.6487, not clipped.
        let (l, c) = ppo_clip_token(0.5, 0.0, -1.0, 0.2);
        close(l, 0.5f64.exp());
        assert!(!c);
        // ratio 1: the plain policy gradient term.
        let (l, c) = ppo_clip_token(-1.0, -1.0, 0.7, 0.2);
        close(l, -0.7);
        assert!(!c);
    }

    #[test]
    fn k3_by_hand() {
        close(k3_kl(-1.0, -1.0), 0.0);
        // d = ref - logp = 1: e - 2.
        close(k3_kl(-2.0, -1.0), std::f64::consts::E - 2.0);
        // d = -1: e^-1 + 1 - 1.
        close(k3_kl(-1.0, -2.0), (-1f64).exp());
    }

    #[test]
    fn aggregations_by_hand() {
        let s = |pg: &[f64], kl: &[f64], spr| SeqLosses {
            pg: pg.to_vec(),
            kl: kl.to_vec(),
            seq_per_rollout: spr,
        };
        // Rollout A has one sequence, rollout B two.
        let seqs = [
            s(&[1.0, 3.0], &[0.5, 1.5], 1),
            s(&[6.0], &[2.0], 2),
            s(&[4.0], &[0.0], 2),
        ];
        // Sequence mean over 4 batch sequences: policy 2/1 + 6/2 + 4/2 = 7,
        // KL 1 + 2 + 0 = 3; (7 + 0.5 * 3) / 4.
        close(
            batch_loss(&seqs, LossAggregation::SequenceMean, 0.5, 4),
            8.5 / 4.0,
        );
        // Token mean: policy 14 / 4, KL 4 / 4.
        close(
            batch_loss(&seqs, LossAggregation::TokenMean, 0.5, 4),
            3.5 + 0.5,
        );
        let w = LossAggregation::SequenceMean.weights(2, 3, 5, 100);
        close(w.pg, 1.0 / 30.0);
        close(w.kl, 1.0 / 10.0);
        let w = LossAggregation::TokenMean.weights(2, 3, 5, 100);
        assert_eq!((w.pg, w.kl), (0.01, 0.01));
    }

    #[test]
    fn each_rollout_has_the_same_policy_weight() {
        // Ratio 1: a token's PPO-clip loss is -A. Rollout A (+1) has one
        // sequence, rollout B (-1) three: per rollout, the policy terms
        // cancel, -1/1 + 3 * (1/3) = 0. Dividing only by the batch's
        // sequences would give (-1 + 3) / 4 = 0.5.
        let a = SeqLosses {
            pg: vec![-1.0; 2],
            kl: vec![0.0; 2],
            seq_per_rollout: 1,
        };
        let b = |len| SeqLosses {
            pg: vec![1.0; len],
            kl: vec![0.0; len],
            seq_per_rollout: 3,
        };
        let seqs = [a, b(1), b(4), b(7)];
        close(
            batch_loss(&seqs, LossAggregation::SequenceMean, 0.0, 4),
            0.0,
        );
    }
}
