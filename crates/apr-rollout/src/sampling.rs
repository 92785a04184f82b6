//! Per-thread token sampling: greedy, temperature, top-k and top-p, with a
//! random stream per (problem, sample, thread) so that a thread's tokens do
//! not depend on which other threads share its batches.

use crate::error::{Error, Result};
use apr_model::init::SplitMix;
use serde::{Deserialize, Serialize};

/// How each next token is chosen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplingParams {
    /// 0 for greedy (the arg-max, lowest id on ties); otherwise the softmax
    /// temperature.
    pub temperature: f64,
    /// Keep only the `top_k` most likely tokens (0: all).
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability
    /// reaches `top_p` (1: all).
    pub top_p: f64,
    /// The distribution each sampled token's log-probability is recorded
    /// under (GRPO's "old" log-probability).
    pub logprobs: LogprobBase,
}

/// The distribution a sampled token's recorded log-probability is taken
/// under. Greedy tokens always record the model's own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogprobBase {
    /// The model's own distribution (temperature 1, no truncation): the
    /// paper's GRPO, whose policy is the temperature-1 model.
    #[default]
    Model,
    /// The tempered distribution `softmax(logits / T)` (no truncation):
    /// GRPO then trains the policy the tokens are drawn from, whose arg-max
    /// is the greedy policy's (the trainer scales its logits by
    /// [`SamplingParams::logit_scale`]).
    Tempered,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            logprobs: LogprobBase::Model,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding.
    pub fn greedy() -> Self {
        Self::default()
    }

    /// Plain sampling at a temperature.
    pub fn temperature(t: f64) -> Self {
        SamplingParams {
            temperature: t,
            ..Self::default()
        }
    }

    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(Error::Config(format!(
                "temperature {} must be finite and >= 0",
                self.temperature
            )));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(Error::Config(format!(
                "top_p {} must be in (0, 1]",
                self.top_p
            )));
        }
        Ok(())
    }

    /// Picks a token from `logits`. Returns the token and its
    /// log-probability under the distribution [`Self::logprobs`] names (the
    /// model's own by default: temperature 1, no truncation): the quantity
    /// GRPO's ratio is computed against.
    pub fn pick(&self, logits: &[f32], rng: &mut SplitMix) -> (u32, f32) {
        let greedy = self.temperature <= 0.0 || self.top_k == 1;
        let truncate = self.top_k > 0 && self.top_k < logits.len() || self.top_p < 1.0;
        let (id, lp) = if greedy || !truncate {
            // Greedy, or plain sampling at a temperature: the model crate's.
            let t = if greedy { 0.0 } else { self.temperature };
            apr_model::generate::pick(logits, t, rng)
        } else {
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let lse = max + logits.iter().map(|&x| (x - max).exp()).sum::<f32>().ln();
            let id = self.sample_truncated(logits, max, rng);
            (id as u32, logits[id] - lse)
        };
        match self.logprobs {
            LogprobBase::Tempered if !greedy => {
                (id, tempered_logprob(logits, id, self.temperature))
            }
            _ => (id, lp),
        }
    }

    /// The factor the trainer multiplies the logits by so that its
    /// log-probabilities are the recorded ones: `1 / T` for
    /// [`LogprobBase::Tempered`] sampling, else 1.
    pub fn logit_scale(&self) -> f64 {
        match self.logprobs {
            LogprobBase::Tempered if self.temperature > 0.0 => 1.0 / self.temperature,
            _ => 1.0,
        }
    }

    /// Samples from the top-k / top-p truncated, tempered distribution.
    fn sample_truncated(&self, logits: &[f32], max: f32, rng: &mut SplitMix) -> usize {
        let t = self.temperature;
        let mut cand: Vec<(usize, f64)> = logits
            .iter()
            .enumerate()
            .map(|(i, &x)| (i, (((x - max) as f64) / t).exp()))
            .collect();
        // Most likely first; ties by id, so the order is deterministic.
        cand.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if self.top_k > 0 {
            cand.truncate(self.top_k);
        }
        if self.top_p < 1.0 {
            let total: f64 = cand.iter().map(|c| c.1).sum();
            let mut acc = 0.0;
            let mut keep = cand.len();
            for (n, c) in cand.iter().enumerate() {
                acc += c.1;
                if acc >= self.top_p * total {
                    keep = n + 1;
                    break;
                }
            }
            cand.truncate(keep);
        }
        let total: f64 = cand.iter().map(|c| c.1).sum();
        let mut u = rng.next_f64() * total;
        for &(i, w) in &cand {
            if u < w {
                return i;
            }
            u -= w;
        }
        cand.last().map_or(0, |c| c.0)
    }
}

/// The seed of one thread: a hash of the run seed, the problem, the sample
/// and the thread's path in its tree (spawn round and child index at each
/// level), independent of scheduling.
pub fn thread_seed(seed: u64, problem: usize, sample: usize, path: &[u32]) -> u64 {
    let mut h = SplitMix::new(seed ^ 0x5150_4150_5250_4f4c).next_u64();
    let mut mix = |x: u64| h = SplitMix::new(h ^ x.wrapping_mul(0x9E37_79B9_7F4A_7C15)).next_u64();
    mix(problem as u64);
    mix(sample as u64);
    for &p in path {
        mix(p as u64 + 1);
    }
    h
}

/// `log softmax(logits / t)[id]`, in f64 for the sum.
fn tempered_logprob(logits: &[f32], id: u32, t: f64) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let z: f64 = logits.iter().map(|&x| ((x as f64 - max) / t).exp()).sum();
    ((logits[id as usize] as f64 - max) / t - z.ln()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_first_maximum_and_reports_its_logprob() {
        let mut rng = SplitMix::new(1);
        let (id, lp) = SamplingParams::greedy().pick(&[0.0, 2.0, 2.0, -1.0], &mut rng);
        assert_eq!(id, 1);
        let z = 1.0 + 2.0 * 2f32.exp() + (-1f32).exp();
        assert!((lp - (2.0 - z.ln())).abs() < 1e-6);
    }

    fn freq(p: &SamplingParams, logits: &[f32], n: usize) -> Vec<f64> {
        let mut rng = SplitMix::new(7);
        let mut c = vec![0usize; logits.len()];
        for _ in 0..n {
            c[p.pick(logits, &mut rng).0 as usize] += 1;
        }
        c.into_iter().map(|x| x as f64 / n as f64).collect()
    }

    /// Probabilities 0.5, 0.3, 0.15, 0.05 (logits are their logs).
    fn logits() -> Vec<f32> {
        [0.5f32, 0.3, 0.15, 0.05].iter().map(|p| p.ln()).collect()
    }

    #[test]
    fn temperature_one_follows_the_distribution() {
        let f = freq(&SamplingParams::temperature(1.0), &logits(), 40_000);
        for (a, b) in f.iter().zip([0.5, 0.3, 0.15, 0.05]) {
            assert!((a - b).abs() < 0.01, "{f:?}");
        }
    }

    #[test]
    fn top_k_renormalises_over_the_k_best() {
        let p = SamplingParams {
            temperature: 1.0,
            top_k: 2,
            ..SamplingParams::temperature(1.0)
        };
        let f = freq(&p, &logits(), 40_000);
        // 0.5 / 0.8 and 0.3 / 0.8.
        assert!(
            (f[0] - 0.625).abs() < 0.01 && (f[1] - 0.375).abs() < 0.01,
            "{f:?}"
        );
        assert_eq!(f[2] + f[3], 0.0);
    }

    #[test]
    fn top_p_keeps_the_smallest_set_reaching_p() {
        let p = SamplingParams {
            temperature: 1.0,
            top_p: 0.9,
            ..SamplingParams::temperature(1.0)
        };
        // 0.5 + 0.3 < 0.9 <= 0.5 + 0.3 + 0.15: three tokens, renormalised by 0.95.
        let f = freq(&p, &logits(), 40_000);
        assert!((f[0] - 0.5 / 0.95).abs() < 0.01, "{f:?}");
        assert_eq!(f[3], 0.0);
    }

    #[test]
    fn tempered_logprobs_are_the_sampled_distribution() {
        // At T = 0.5 the probabilities are p^2 / 0.365: 0.25, 0.09, 0.0225,
        // 0.0025 over 0.365.
        let p = SamplingParams {
            logprobs: LogprobBase::Tempered,
            ..SamplingParams::temperature(0.5)
        };
        assert_eq!(p.logit_scale(), 2.0);
        let l = logits();
        let mut rng = SplitMix::new(3);
        let mut seen = [false; 4];
        for _ in 0..200 {
            let (id, lp) = p.pick(&l, &mut rng);
            let q = [0.25f64, 0.09, 0.0225, 0.0025][id as usize] / 0.365;
            assert!((lp as f64 - q.ln()).abs() < 1e-5, "{id}: {lp}");
            seen[id as usize] = true;
        }
        assert!(seen[0] && seen[1], "{seen:?}");
        // The model base records log p at temperature 1 for the same draws.
        let m = SamplingParams::temperature(0.5);
        assert_eq!(m.logit_scale(), 1.0);
        let (id, lp) = m.pick(&l, &mut SplitMix::new(3));
        assert!((lp - l[id as usize]).abs() < 1e-6);
        // Greedy records the model's own.
        let g = SamplingParams {
            logprobs: LogprobBase::Tempered,
            ..SamplingParams::greedy()
        };
        assert_eq!(g.logit_scale(), 1.0);
        assert!((g.pick(&l, &mut rng).1 - 0.5f32.ln()).abs() < 1e-6);
    }

    #[test]
    fn thread_seeds_differ_by_path_and_repeat() {
        let a = thread_seed(1, 0, 0, &[]);
        assert_eq!(a, thread_seed(1, 0, 0, &[]));
        let others = [
            thread_seed(2, 0, 0, &[]),
            thread_seed(1, 1, 0, &[]),
            thread_seed(1, 0, 1, &[]),
            thread_seed(1, 0, 0, &[0, 0]),
            thread_seed(1, 0, 0, &[0, 1]),
        ];
        for o in others {
            assert_ne!(a, o);
        }
        assert_ne!(others[3], others[4]);
    }
}
