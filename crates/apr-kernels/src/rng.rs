//! The seeded generator of the model's host-side randomness (weight
//! initialisation, sampling, batch order, test inputs), so that a seed gives
//! the same numbers on every backend (CPU and CUDA alike).

use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::SplitMix64;

/// SplitMix64 (`rand_xoshiro`'s) with the draws initialisation, sampling
/// and batching use: a seed gives the same stream on every backend.
#[derive(Clone, Debug)]
pub struct SplitMix(SplitMix64);

impl SplitMix {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        SplitMix(SplitMix64::seed_from_u64(seed))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A uniform float in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// `n` normal samples with standard deviation `std` (Box-Muller).
    pub fn normal_vec(&mut self, n: usize, std: f64) -> Vec<f32> {
        let mut out = Vec::with_capacity(n + 1);
        while out.len() < n {
            let u1 = self.next_f64().max(f64::MIN_POSITIVE);
            let u2 = self.next_f64();
            let r = (-2.0 * u1.ln()).sqrt() * std;
            let t = std::f64::consts::TAU * u2;
            out.push((r * t.cos()) as f32);
            out.push((r * t.sin()) as f32);
        }
        out.truncate(n);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SplitMix64's published vector (seed 1234567).
    #[test]
    fn matches_the_reference_generator() {
        let mut r = SplitMix::new(1_234_567);
        assert_eq!(r.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(r.next_u64(), 3_203_168_211_198_807_973);
    }

    #[test]
    fn normal_samples_have_the_asked_spread() {
        let v = SplitMix::new(7).normal_vec(20_001, 0.02);
        assert_eq!(v.len(), 20_001);
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(mean.abs() < 0.001, "{mean}");
        assert!((var.sqrt() - 0.02).abs() < 0.001, "{}", var.sqrt());
        assert_eq!(v, SplitMix::new(7).normal_vec(20_001, 0.02));
    }
}
