//! GRPO's arithmetic on plain numbers: group advantages, the PPO-clip
//! objective per token, the k3 KL estimate, and the two loss aggregations.
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

/// How per-token losses become the batch loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossAggregation {
    /// The reference: each sequence's mean over its tokens, summed, divided
    /// by the number of sequences in the rollout batch.
    SequenceMean,
    /// The mean over all tokens of all sequences.
    TokenMean,
}

/// Aggregates per-token losses of several sequences (only generated tokens
/// should be passed). `rollout_sequences` is the divisor of
/// [`LossAggregation::SequenceMean`]: the number of sequences in the whole
/// rollout batch, which may exceed `seqs.len()` when it is split into
/// micro-batches. Empty sequences count in the divisor but add nothing.
pub fn aggregate(seqs: &[Vec<f64>], how: LossAggregation, rollout_sequences: usize) -> f64 {
    match how {
        LossAggregation::SequenceMean => {
            let sum: f64 = seqs
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| s.iter().sum::<f64>() / s.len() as f64)
                .sum();
            sum / rollout_sequences.max(1) as f64
        }
        LossAggregation::TokenMean => {
            let n: usize = seqs.iter().map(Vec::len).sum();
            seqs.iter().flatten().sum::<f64>() / n.max(1) as f64
        }
    }
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
        let seqs = vec![vec![1.0, 3.0], vec![6.0], vec![]];
        // Sequence means 2 and 6, over 4 rollout sequences: 2.
        close(aggregate(&seqs, LossAggregation::SequenceMean, 4), 2.0);
        // Token mean: 10 / 3.
        close(aggregate(&seqs, LossAggregation::TokenMean, 4), 10.0 / 3.0);
    }
}
