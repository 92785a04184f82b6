//! Metrics over rollout results: a thread's context, cumulative accuracy
//! against the context window, and SoS+ cons@n / pass@n.

use apr_rollout::{ProblemResult, ThreadResult};
use serde::{Deserialize, Serialize};

/// The most tokens a thread held in its context at once: the longest of
/// its calls (prompt plus generation).
pub fn thread_context(t: &ThreadResult) -> usize {
    t.calls
        .iter()
        .map(|c| c.prompt_ids.len() + c.generated_ids.len())
        .max()
        .unwrap_or(0)
}

/// The largest context of any thread of a result.
pub fn max_context(r: &ProblemResult) -> usize {
    r.root
        .threads()
        .into_iter()
        .map(thread_context)
        .max()
        .unwrap_or(0)
}

/// Cumulative accuracy at each window `w`: the share of `results` solved
/// with every thread's context at most `w` (the paper's accuracy at a
/// context window).
pub fn cumulative_accuracy(results: &[ProblemResult], windows: &[usize]) -> Vec<(usize, f64)> {
    let n = results.len().max(1) as f64;
    let ctx: Vec<(bool, usize)> = results.iter().map(|r| (r.solved, max_context(r))).collect();
    windows
        .iter()
        .map(|&w| {
            let ok = ctx.iter().filter(|(s, c)| *s && *c <= w).count();
            (w, ok as f64 / n)
        })
        .collect()
}

/// The 95% Wilson score interval of `k` successes in `n` trials (an
/// accuracy's interval; `(0, 1)` when `n` is 0).
pub fn wilson_interval(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    const Z: f64 = 1.959_963_984_540_054;
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let z2 = Z * Z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// [`wilson_interval`] of an accuracy given as a share of `n` problems
/// (the count of solved problems is the share times `n`, rounded).
pub fn wilson_of_share(share: f64, n: usize) -> (f64, f64) {
    wilson_interval((share * n as f64).round() as usize, n)
}

/// A difference of two accuracies on the same problems with its 95%
/// paired-bootstrap interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairedDiff {
    /// Accuracy of `b` minus accuracy of `a`.
    pub diff: f64,
    /// 2.5th percentile of the resampled differences.
    pub lo: f64,
    /// 97.5th percentile.
    pub hi: f64,
}

impl PairedDiff {
    /// Whether the interval excludes 0 (else: no significant change).
    pub fn significant(&self) -> bool {
        self.lo > 0.0 || self.hi < 0.0
    }
}

/// `b - a` over the same problems (`a[i]`, `b[i]`: problem `i` solved), with
/// a percentile interval from `resamples` paired bootstrap resamples of the
/// problems (seeded: the same inputs give the same interval). `None` when
/// the lengths differ or are 0.
pub fn paired_bootstrap(a: &[bool], b: &[bool], resamples: usize, seed: u64) -> Option<PairedDiff> {
    let n = a.len();
    if n == 0 || b.len() != n {
        return None;
    }
    let d: Vec<i32> = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| y as i32 - x as i32)
        .collect();
    let mean = |sum: i64| sum as f64 / n as f64;
    let mut rng = apr_model::init::SplitMix::new(seed);
    let mut diffs: Vec<f64> = (0..resamples.max(1))
        .map(|_| {
            let sum: i64 = (0..n)
                .map(|_| d[(rng.next_u64() % n as u64) as usize] as i64)
                .sum();
            mean(sum)
        })
        .collect();
    diffs.sort_by(f64::total_cmp);
    let at = |q: f64| diffs[((q * (diffs.len() - 1) as f64).round()) as usize];
    Some(PairedDiff {
        diff: mean(d.iter().map(|&x| x as i64).sum()),
        lo: at(0.025),
        hi: at(0.975),
    })
}

/// cons@n and pass@n at one n.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AtN {
    /// Samples per problem.
    pub n: usize,
    /// Majority vote over the samples with a solution-looking path,
    /// verified.
    pub cons: f64,
    /// Any of the n samples solved.
    pub pass: f64,
    /// Mean total tokens of the n samples together, per problem.
    pub total_tokens: f64,
}

/// Whether the majority vote of `samples` is a correct solution: samples
/// from whose root's final call no answer could be read (by the scorer's
/// rules, [`apr_countdown::score()`]) are dropped; the most frequent answer
/// (its operations) wins, ties to the first seen, and counts when that
/// sample was solved.
pub fn consensus(samples: &[&ProblemResult]) -> bool {
    let mut votes: Vec<(&[String], usize, bool)> = Vec::new();
    for r in samples {
        let Some(key) = r.answer.as_deref() else {
            continue;
        };
        match votes.iter_mut().find(|v| v.0 == key) {
            Some(v) => v.1 += 1,
            None => votes.push((key, 1, r.solved)),
        }
    }
    let mut best: Option<&(&[String], usize, bool)> = None;
    for v in &votes {
        if best.is_none_or(|b| v.1 > b.1) {
            best = Some(v);
        }
    }
    best.is_some_and(|b| b.2)
}

/// Whether each problem is solved by cons@n: `results` hold `samples`
/// samples of each problem in (problem, sample) order; the vote uses the
/// first n of them. One entry per problem, in order (for paired
/// comparisons with another model on the same problems).
pub fn cons_per_problem(results: &[ProblemResult], samples: usize, n: usize) -> Vec<bool> {
    results
        .chunks(samples.max(1))
        .map(|g| consensus(&g.iter().take(n).collect::<Vec<_>>()))
        .collect()
}

/// cons@n and pass@n for n = 1..=max_n. `results` hold `samples` samples
/// of each problem in (problem, sample) order; n uses the first n samples.
pub fn at_n(results: &[ProblemResult], samples: usize, max_n: usize) -> Vec<AtN> {
    let groups: Vec<&[ProblemResult]> = results.chunks(samples.max(1)).collect();
    let np = groups.len().max(1) as f64;
    (1..=max_n.min(samples))
        .map(|n| {
            let cons = cons_per_problem(results, samples, n)
                .into_iter()
                .filter(|&c| c)
                .count();
            let (mut pass, mut tokens) = (0usize, 0usize);
            for g in &groups {
                let s = &g[..n.min(g.len())];
                pass += s.iter().any(|r| r.solved) as usize;
                tokens += s.iter().map(|r| r.total_tokens).sum::<usize>();
            }
            AtN {
                n,
                cons: cons as f64 / np,
                pass: pass as f64 / np,
                total_tokens: tokens as f64 / np,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use apr_countdown::Problem;
    use apr_rollout::{CallRecord, FinishReason};

    fn result(text: &str, solved: bool, ctx: &[usize]) -> ProblemResult {
        let call = |n: usize, text: &str| CallRecord {
            text: text.into(),
            prompt_ids: vec![1; n / 2],
            generated_ids: vec![5; n - n / 2],
            logprobs: vec![0.0; n - n / 2],
            reused_tokens: 0,
        };
        let thread = |n: usize, text: &str| ThreadResult {
            calls: vec![call(n, text)],
            children: vec![],
            finish: FinishReason::Eos,
        };
        let mut root = thread(ctx[0], text);
        root.children = vec![ctx[1..].iter().map(|&n| thread(n, "")).collect()];
        ProblemResult {
            problem: 0,
            sample: 0,
            problem_fields: Default::default(),
            trace_dict: root.dict(),
            root,
            solved,
            answer: None,
            unsolved: None,
            parses: true,
            parse_error: None,
            total_tokens: ctx.iter().sum(),
            sequential_tokens: 0,
            generated_tokens: 0,
            prefilled_tokens: 0,
            reused_tokens: 0,
            child_threads: ctx.len() - 1,
            latency_s: 0.0,
            finish_reasons: Default::default(),
        }
    }

    #[test]
    fn cumulative_accuracy_counts_the_largest_thread() {
        let rs = vec![
            result("", true, &[100, 300]),
            result("", true, &[200]),
            result("", false, &[50]),
            result("", true, &[600, 10, 10]),
        ];
        assert_eq!(max_context(&rs[0]), 300);
        let c = cumulative_accuracy(&rs, &[100, 250, 300, 1000]);
        assert_eq!(c, vec![(100, 0.0), (250, 0.25), (300, 0.5), (1000, 0.75)]);
    }

    const GOOD: &str = "Current State: 24:[6, 4], Operations: []\nExploring Operation: 6*4=24, Resulting Numbers: [24]\n24,24 equal: Goal Reached\nMoving to Node #0\nCurrent State: 24:[6, 4], Operations: []\nExploring Operation: 6*4=24, Resulting Numbers: [24]\n24,24 equal: Goal Reached\n";
    const NONE: &str = "Current State: 24:[6, 4], Operations: []\n";

    /// A SoS+ sample of `p` scored as the engine scores it.
    fn sample(p: &Problem, text: &str) -> ProblemResult {
        let s = apr_countdown::score(p, apr_trace::TraceMode::Sosp, text);
        let mut r = result(text, s.solved(), &[10]);
        r.answer = s.answer_strings();
        r
    }

    #[test]
    fn paired_bootstrap_intervals() {
        // Identical results: the difference and its interval are exactly 0.
        let a = [true, false, true, false];
        let d = paired_bootstrap(&a, &a, 1000, 1).unwrap();
        assert_eq!((d.diff, d.lo, d.hi), (0.0, 0.0, 0.0));
        assert!(!d.significant());
        // b solves 60 more of 100 and loses none: clearly above 0.
        let a = vec![false; 100];
        let b: Vec<bool> = (0..100).map(|i| i < 60).collect();
        let d = paired_bootstrap(&a, &b, 2000, 7).unwrap();
        assert!((d.diff - 0.6).abs() < 1e-12);
        assert!(d.lo > 0.45 && d.hi < 0.75 && d.significant(), "{d:?}");
        // One more solve in 100: no significant change.
        let b: Vec<bool> = (0..100).map(|i| i == 0).collect();
        let d = paired_bootstrap(&a, &b, 2000, 7).unwrap();
        assert!(d.lo <= 0.0 && !d.significant(), "{d:?}");
        assert_eq!(d, paired_bootstrap(&a, &b, 2000, 7).unwrap());
        assert!(paired_bootstrap(&a, &b[..99], 10, 1).is_none());
    }

    #[test]
    fn wilson_intervals_by_hand() {
        let (lo, hi) = wilson_interval(28, 40);
        assert!((lo - 0.545_700).abs() < 1e-6 && (hi - 0.819_252).abs() < 1e-6);
        let (lo, hi) = wilson_interval(0, 10);
        assert!(lo == 0.0 && (hi - 0.277_533).abs() < 1e-6);
        assert_eq!(wilson_interval(0, 0), (0.0, 1.0));
        assert_eq!(wilson_of_share(0.7, 40), wilson_interval(28, 40));
    }

    #[test]
    fn consensus_votes_over_solution_looking_samples() {
        let p = Problem {
            nums: vec![6, 4],
            target: 24,
        };
        let bad = GOOD.replace("6*4=24", "6+4=24");
        let (g, b, n) = (sample(&p, GOOD), sample(&p, &bad), sample(&p, NONE));
        assert!(g.solved && !b.solved && !n.solved);
        assert!(b.answer.is_some() && n.answer.is_none());
        // No path: no vote. One good among unparsable ones wins.
        assert!(consensus(&[&n, &g, &n]));
        assert!(!consensus(&[&n, &n]));
        // Two bad against one good: the bad path wins.
        assert!(!consensus(&[&b, &g, &b]));
        // A tie goes to the first seen.
        assert!(consensus(&[&g, &b]));
        assert!(!consensus(&[&b, &g]));
        let rs = vec![b.clone(), g.clone(), g.clone(), n.clone(), n.clone(), n];
        let a = at_n(&rs, 3, 3);
        // Problem 0: samples [b, g, g]; problem 1: [n, n, n].
        assert_eq!(
            a.iter().map(|x| x.cons).collect::<Vec<_>>(),
            vec![0.0, 0.0, 0.5]
        );
        assert_eq!(
            a.iter().map(|x| x.pass).collect::<Vec<_>>(),
            vec![0.0, 0.5, 0.5]
        );
        assert_eq!(a[2].total_tokens, 30.0);
        assert_eq!(cons_per_problem(&rs, 3, 1), vec![false, false]);
        assert_eq!(cons_per_problem(&rs, 3, 3), vec![true, false]);
    }
}
