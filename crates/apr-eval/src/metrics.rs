//! Metrics over rollout results: a thread's context, cumulative accuracy
//! against the context window, and SoS+ cons@n / pass@n.

use apr_countdown::{verify::verify_path, Problem};
use apr_rollout::{ProblemResult, ThreadResult};
use apr_trace::extract_solution_text;
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
/// whose root's final call has no extractable solution path are dropped;
/// the most frequent path (its operations) wins, ties to the first seen.
pub fn consensus(problem: &Problem, samples: &[&ProblemResult]) -> bool {
    let mut votes: Vec<(Vec<String>, usize, apr_trace::SolutionPath)> = Vec::new();
    for r in samples {
        let Some(text) = r.root.calls.last().map(|c| c.text.as_str()) else {
            continue;
        };
        let Ok(path) = extract_solution_text(text) else {
            continue;
        };
        let key = path.op_strings();
        match votes.iter_mut().find(|v| v.0 == key) {
            Some(v) => v.1 += 1,
            None => votes.push((key, 1, path)),
        }
    }
    let mut best: Option<&(Vec<String>, usize, apr_trace::SolutionPath)> = None;
    for v in &votes {
        if best.is_none_or(|b| v.1 > b.1) {
            best = Some(v);
        }
    }
    best.is_some_and(|b| verify_path(problem, &b.2).is_ok())
}

/// cons@n and pass@n for n = 1..=max_n. `results` hold `samples` samples
/// of each problem in (problem, sample) order; n uses the first n samples.
pub fn at_n(
    problems: &[Problem],
    results: &[ProblemResult],
    samples: usize,
    max_n: usize,
) -> Vec<AtN> {
    let groups: Vec<&[ProblemResult]> = results.chunks(samples.max(1)).collect();
    let np = groups.len().max(1) as f64;
    (1..=max_n.min(samples))
        .map(|n| {
            let (mut cons, mut pass, mut tokens) = (0usize, 0usize, 0usize);
            for (g, p) in groups.iter().zip(problems) {
                let s: Vec<&ProblemResult> = g.iter().take(n).collect();
                cons += consensus(p, &s) as usize;
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
            nums: vec![],
            target: 0,
            trace_dict: root.dict(),
            root,
            solved,
            answer: None,
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

    const GOOD: &str = "Current State: 24:[6, 4], Operations: []\nExploring Operation: 6*4=24, Resulting Numbers: [24]\n24,24 equal: Goal Reached\n";
    const BAD: &str = "Current State: 24:[6, 4], Operations: []\nExploring Operation: 6+4=24, Resulting Numbers: [24]\n24,24 equal: Goal Reached\n";
    const NONE: &str = "Current State: 24:[6, 4], Operations: []\n";

    #[test]
    fn consensus_votes_over_solution_looking_samples() {
        let p = Problem {
            nums: vec![6, 4],
            target: 24,
        };
        let (g, b, n) = (
            result(GOOD, true, &[10]),
            result(BAD, false, &[10]),
            result(NONE, false, &[10]),
        );
        // No path: no vote. One good among unparsable ones wins.
        assert!(consensus(&p, &[&n, &g, &n]));
        assert!(!consensus(&p, &[&n, &n]));
        // Two bad against one good: the bad path wins.
        assert!(!consensus(&p, &[&b, &g, &b]));
        // A tie goes to the first seen.
        assert!(consensus(&p, &[&g, &b]));
        assert!(!consensus(&p, &[&b, &g]));
        let rs = vec![b.clone(), g.clone(), g.clone(), n.clone(), n.clone(), n];
        let a = at_n(&[p.clone(), p], &rs, 3, 3);
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
    }
}
