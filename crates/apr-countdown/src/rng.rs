//! The data generator's random numbers: xoshiro256++ seeded through
//! SplitMix64, both from `rand_xoshiro`, so that a seed gives the same data on
//! every platform. The draws built on them (`below`, `chance`, `shuffle`) are
//! written here because the data's bytes depend on their exact algorithms.

use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::{SplitMix64, Xoshiro256PlusPlus};

/// A seed for item `index` of stream `stream` under a master `seed`, so that
/// items can be generated in any order, on any number of threads, with the
/// same result.
pub fn derive_seed(seed: u64, stream: u64, index: u64) -> u64 {
    let a = SplitMix64::seed_from_u64(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64();
    SplitMix64::seed_from_u64(a ^ index.wrapping_mul(0x8CB9_2BA7_2F3D_8DD7)).next_u64()
}

/// xoshiro256++ with the draws the generators use.
#[derive(Clone, Debug)]
pub struct Rng(Xoshiro256PlusPlus);

impl Rng {
    /// A generator from a 64-bit seed (the state is four SplitMix64 outputs).
    pub fn new(seed: u64) -> Rng {
        Rng(Xoshiro256PlusPlus::seed_from_u64(seed))
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `[0, 1)` with 53 bits of precision.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n` (Lemire's unbiased multiply-shift); `n` must be > 0.
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            let lo = m as u64;
            if lo >= n.wrapping_neg() % n {
                return (m >> 64) as u64;
            }
        }
    }

    /// Uniform in `lo..=hi` (`lo <= hi`).
    pub fn range_inclusive(&mut self, lo: u64, hi: u64) -> u64 {
        debug_assert!(lo <= hi);
        match (hi - lo).checked_add(1) {
            Some(n) => lo + self.below(n),
            None => self.next_u64(),
        }
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.next_f64() < p
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SplitMix64's published vector (seed 1234567) and the xoshiro256++
    /// outputs it seeds, computed by the reference C code.
    #[test]
    fn matches_the_reference_generators() {
        let mut sm = SplitMix64::seed_from_u64(1_234_567);
        let want = [
            6_457_827_717_110_365_317u64,
            3_203_168_211_198_807_973,
            9_817_491_932_198_370_423,
        ];
        assert_eq!([sm.next_u64(), sm.next_u64(), sm.next_u64()], want);
        let mut r = Rng::new(1_234_567);
        // rotl(s0 + s3, 23) + s0 over the first four SplitMix64 outputs.
        assert_eq!(r.next_u64(), 437_095_814_655_224_680);
    }

    #[test]
    fn deterministic_and_in_range() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
            let x = a.range_inclusive(1, 99);
            assert!((1..=99).contains(&x));
            b.range_inclusive(1, 99);
        }
        assert_ne!(derive_seed(1, 0, 0), derive_seed(1, 0, 1));
        assert_ne!(derive_seed(1, 0, 0), derive_seed(1, 1, 0));
    }

    #[test]
    fn roughly_uniform() {
        let mut r = Rng::new(7);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[r.below(10) as usize] += 1;
        }
        for c in counts {
            assert!((9_500..10_500).contains(&c), "{counts:?}");
        }
        let hits = (0..100_000).filter(|_| r.chance(0.9)).count();
        assert!((89_500..90_500).contains(&hits));
    }
}
