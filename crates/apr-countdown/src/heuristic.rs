//! The two search heuristics of the reference (lower is better).

use apr_trace::Num;
use serde::{Deserialize, Serialize};

/// Which heuristic orders the search.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Heuristic {
    /// Mean over numbers of `|n - target|` (a single number: `|n - target|`).
    Sum,
    /// Sum over numbers of the distance to the nearest factor (>= 2) of the
    /// target. The official data uses it.
    #[default]
    Mult,
}

impl Heuristic {
    /// The name the datasets' `heuristic` field uses.
    pub fn name(self) -> &'static str {
        match self {
            Heuristic::Sum => "sum_heuristic",
            Heuristic::Mult => "mult_heuristic",
        }
    }

    /// Parses `sum`, `mult`, `sum_heuristic` or `mult_heuristic`.
    pub fn parse(s: &str) -> Option<Heuristic> {
        match s {
            "sum" | "sum_heuristic" => Some(Heuristic::Sum),
            "mult" | "mult_heuristic" => Some(Heuristic::Mult),
            _ => None,
        }
    }

    /// A scorer for one target, with the target's factors precomputed.
    pub fn scorer(self, target: Num) -> Scorer {
        Scorer::new(self, target)
    }
}

/// The factors >= 2 of `target`, ascending, from the pairs (f, target / f)
/// with f up to the square root: 2^31 divisions for a target near 2^62
/// instead of 2^62.
fn factors_from_2(target: Num) -> Vec<Num> {
    let mut low = Vec::new();
    let mut high = Vec::new();
    let mut f: Num = 1;
    while f.checked_mul(f).is_some_and(|sq| sq <= target) {
        if target.is_multiple_of(f) {
            low.push(f);
            if f != target / f {
                high.push(target / f);
            }
        }
        f += 1;
    }
    low.extend(high.into_iter().rev());
    low.retain(|&f| f >= 2);
    low
}

/// A heuristic bound to one target.
#[derive(Clone, Debug)]
pub struct Scorer {
    kind: Heuristic,
    target: Num,
    /// Mult: the factors (>= 2) of the target.
    factors: Vec<Num>,
    /// Mult: distance to the nearest factor for every n below the target.
    below_target: Vec<u32>,
}

impl Scorer {
    /// Precomputes what the heuristic needs for `target`.
    ///
    /// Departure: the reference's multiply heuristic fails on targets with no
    /// factor >= 2 (0 and 1); here the target itself is used as the factor.
    pub fn new(kind: Heuristic, target: Num) -> Scorer {
        let mut below_target = Vec::new();
        let mut factors = Vec::new();
        if kind == Heuristic::Mult {
            factors = factors_from_2(target);
            if factors.is_empty() {
                factors.push(target);
            }
            // Targets are small (<= a few thousand); a direct table is cheap.
            let n = usize::try_from(target).unwrap_or(0).min(1 << 20);
            // One sweep: factors are sorted, so the nearest one to x is the
            // last factor <= x or the first one above it.
            below_target = Vec::with_capacity(n);
            let mut next = 0;
            for x in 0..n as Num {
                while next < factors.len() && factors[next] <= x {
                    next += 1;
                }
                let below = next.checked_sub(1).map(|k| x - factors[k]);
                let above = factors.get(next).map(|&f| f - x);
                let d = match (below, above) {
                    (Some(a), Some(b)) => a.min(b),
                    (Some(a), None) => a,
                    (None, Some(b)) => b,
                    (None, None) => 0,
                };
                below_target.push(d as u32);
            }
        }
        Scorer {
            kind,
            target,
            factors,
            below_target,
        }
    }

    /// The heuristic value of a list of numbers.
    #[inline]
    pub fn score(&self, nums: &[Num]) -> f64 {
        match self.kind {
            Heuristic::Sum => {
                let s: f64 = nums.iter().map(|&n| n.abs_diff(self.target) as f64).sum();
                if nums.len() == 1 {
                    s
                } else {
                    s / nums.len() as f64
                }
            }
            Heuristic::Mult => nums.iter().map(|&n| self.mult_distance(n) as f64).sum(),
        }
    }

    /// The heuristic value of the list that replaces `a` and `b` of a list
    /// of `len` numbers scoring `parent` with `result`, without building it.
    /// Equal to `score` of that list (exactly: the sums are of integers).
    #[inline]
    pub fn score_after(&self, parent: &Partial, a: Num, b: Num, result: Num) -> f64 {
        self.score_with(parent, self.pair_base(parent, a, b), result)
    }

    /// The part of [`score_after`](Self::score_after) that depends only on
    /// the pair `a`, `b` (shared by the pair's up to four results).
    #[inline]
    pub fn pair_base(&self, parent: &Partial, a: Num, b: Num) -> f64 {
        parent.sum - self.term(a) - self.term(b)
    }

    /// [`score_after`](Self::score_after) from a [`pair_base`](Self::pair_base).
    #[inline]
    pub fn score_with(&self, parent: &Partial, base: f64, result: Num) -> f64 {
        let s = base + self.term(result);
        match self.kind {
            Heuristic::Sum if parent.len > 2 => s / (parent.len - 1) as f64,
            _ => s,
        }
    }

    /// One number's term of the undivided sum.
    #[inline]
    fn term(&self, n: Num) -> f64 {
        match self.kind {
            Heuristic::Sum => n.abs_diff(self.target) as f64,
            Heuristic::Mult => self.mult_distance(n) as f64,
        }
    }

    /// The undivided sum behind `score`, for [`score_after`](Self::score_after).
    pub fn partial(&self, nums: &[Num]) -> Partial {
        let sum = nums.iter().map(|&n| self.term(n)).sum();
        Partial {
            sum,
            len: nums.len(),
        }
    }

    #[inline]
    fn mult_distance(&self, n: Num) -> Num {
        if n >= self.target {
            // Every factor is at most the target, and the target is one.
            return n - self.target;
        }
        match self.below_target.get(n as usize) {
            Some(&d) => Num::from(d),
            None => self
                .factors
                .iter()
                .map(|&f| n.abs_diff(f))
                .min()
                .unwrap_or(0),
        }
    }
}

/// The per-number sum of a heuristic over a list, and the list's length.
#[derive(Clone, Copy, Debug)]
pub struct Partial {
    sum: f64,
    len: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_direct_minimum() {
        for target in [1, 2, 7, 24, 36, 97, 100, 360] {
            let sc = Heuristic::Mult.scorer(target);
            let mut factors: Vec<Num> = (2..=target).filter(|f| target % f == 0).collect();
            if factors.is_empty() {
                factors.push(target);
            }
            for x in 0..2 * target + 3 {
                let direct = factors.iter().map(|&f| x.abs_diff(f)).min().unwrap();
                assert_eq!(sc.score(&[x]), direct as f64, "target {target}, x {x}");
            }
        }
    }

    /// Factors by pairs up to the square root equal the direct
    /// enumeration, and a huge target (issue 20: about 2^62 hung
    /// `gen-data traces`) is fast.
    #[test]
    fn factors_by_square_root_pairs() {
        for target in 0..=400 {
            let direct: Vec<Num> = (2..=target).filter(|f| target % f == 0).collect();
            assert_eq!(factors_from_2(target), direct, "{target}");
        }
        let t = std::time::Instant::now();
        let f = factors_from_2(1 << 40);
        assert_eq!(f, (1..=40).map(|k| 1 << k).collect::<Vec<Num>>());
        assert!(t.elapsed().as_secs_f64() < 5.0);
        let sc = Heuristic::Mult.scorer(1 << 40);
        assert_eq!(sc.score(&[1 << 20]), 0.0);
    }

    #[test]
    fn hand_computed_values() {
        let m = Heuristic::Mult.scorer(24);
        // factors of 24 >= 2: 2 3 4 6 8 12 24
        assert_eq!(m.score(&[1]), 1.0);
        assert_eq!(m.score(&[10, 30, 18]), 2.0 + 6.0 + 6.0);
        assert_eq!(m.score(&[0, 24]), 2.0);
        let p = Heuristic::Mult.scorer(97); // prime
        assert_eq!(p.score(&[50]), 47.0);
        assert_eq!(p.score(&[1]), 96.0);
        let s = Heuristic::Sum.scorer(10);
        assert_eq!(s.score(&[4]), 6.0);
        assert_eq!(s.score(&[4, 20]), 8.0);
        for h in [Heuristic::Sum, Heuristic::Mult] {
            let sc = h.scorer(36);
            let nums = [5, 40, 7, 100];
            let part = sc.partial(&nums);
            // replace 40 and 7 by 47 -> [5, 100, 47]
            assert_eq!(sc.score_after(&part, 40, 7, 47), sc.score(&[5, 100, 47]));
            let two = sc.partial(&[5, 9]);
            assert_eq!(sc.score_after(&two, 5, 9, 45), sc.score(&[45]));
        }
        let one = Heuristic::Mult.scorer(1);
        assert_eq!(one.score(&[3]), 2.0);
    }
}
