//! Plain generation for one prompt: greedy or temperature sampling with a
//! KV cache. (The batched engine with spawn/join is `apr-rollout`.)

use crate::backend::AprBackend;
use crate::cache::{KvCache, Logits};
use crate::error::{Error, Result};
use crate::init::SplitMix;
use crate::model::Llama;

/// How to pick each next token.
#[derive(Clone, Debug, PartialEq)]
pub struct SampleConfig {
    /// 0 for greedy; otherwise the softmax temperature.
    pub temperature: f64,
    /// Most new tokens.
    pub max_new_tokens: usize,
    /// The token that ends generation.
    pub eos: u32,
    /// Seed of the sampler.
    pub seed: u64,
}

/// A generated continuation.
#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    /// New token ids (the end token included when reached).
    pub tokens: Vec<u32>,
    /// Log-probability of each new token under the sampling distribution's
    /// model (temperature 1).
    pub logprobs: Vec<f32>,
    /// Whether the end token was generated.
    pub finished: bool,
}

/// Picks a token from logits: the arg-max at temperature 0 (lowest id on
/// ties), a sample otherwise. Returns the token and its log-probability
/// under the untempered distribution.
pub fn pick(logits: &[f32], temperature: f64, rng: &mut SplitMix) -> (u32, f32) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = max + logits.iter().map(|&x| (x - max).exp()).sum::<f32>().ln();
    let id = if temperature <= 0.0 {
        let mut best = 0;
        for (i, &x) in logits.iter().enumerate() {
            if x > logits[best] {
                best = i;
            }
        }
        best
    } else {
        let w: Vec<f64> = logits
            .iter()
            .map(|&x| (((x - max) as f64) / temperature).exp())
            .collect();
        let mut u = rng.next_f64() * w.iter().sum::<f64>();
        let mut pick = w.len() - 1;
        for (i, &x) in w.iter().enumerate() {
            if u < x {
                pick = i;
                break;
            }
            u -= x;
        }
        pick
    };
    (id as u32, logits[id] - lse)
}

impl<B: AprBackend> Llama<B> {
    /// Continues `prompt` until the end token or `max_new_tokens`, or until
    /// the context window is full.
    pub fn generate(&self, prompt: &[u32], cfg: &SampleConfig) -> Result<Generation> {
        if prompt.is_empty() {
            return Err(Error::Input("empty prompt".into()));
        }
        let cap = self.config.max_seq_len;
        if prompt.len() >= cap {
            return Err(Error::Input(format!(
                "prompt of {} tokens fills the context of {cap}",
                prompt.len()
            )));
        }
        let mut cache = KvCache::new(&self.config, 1, cap, &self.device());
        let mut rng = SplitMix::new(cfg.seed);
        let mut out = Generation {
            tokens: Vec::new(),
            logprobs: Vec::new(),
            finished: false,
        };
        let mut next: Vec<u32> = prompt.to_vec();
        while out.tokens.len() < cfg.max_new_tokens && cache.lens()[0] + next.len() <= cap {
            let Logits::Last(l) = self.forward_cached(&mut cache, &[&next], false)? else {
                return Err(Error::Input("cached forward gave all logits".into()));
            };
            let row: Vec<f32> = l.into_data().convert::<f32>().to_vec().unwrap_or_default();
            let (tok, lp) = pick(&row, cfg.temperature, &mut rng);
            out.tokens.push(tok);
            out.logprobs.push(lp);
            if tok == cfg.eos {
                out.finished = true;
                break;
            }
            next = vec![tok];
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_pick_takes_the_first_maximum_and_its_logprob() {
        let mut rng = SplitMix::new(1);
        let (id, lp) = pick(&[0.0, 2.0, 2.0, -1.0], 0.0, &mut rng);
        assert_eq!(id, 1);
        // log(e^2 / (1 + 2e^2 + e^-1))
        let z = 1.0 + 2.0 * 2f32.exp() + (-1f32).exp();
        assert!((lp - (2.0 - z.ln())).abs() < 1e-6);
    }

    #[test]
    fn sampling_follows_the_distribution() {
        let mut rng = SplitMix::new(3);
        let logits = [0.0, (3f32).ln()]; // p = 1/4, 3/4
        let n = 20_000;
        let ones = (0..n)
            .filter(|_| pick(&logits, 1.0, &mut rng).0 == 1)
            .count();
        let p = ones as f64 / n as f64;
        assert!((p - 0.75).abs() < 0.015, "{p}");
    }
}
