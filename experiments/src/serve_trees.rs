//! `serve-check --trees`: whole greedy rollouts (thread trees with spawns
//! and joins) of one model on the native backend and on a server backend,
//! compared problem by problem: identical trees, the first divergence of
//! each that differs, accuracy by the official rules on both sides with a
//! paired interval, tokens/s, and the server's prefix-cache hits after
//! joins.

use crate::{Error, Result};
use apr_countdown::Problem;
use apr_eval::metrics::{paired_bootstrap, wilson_interval, PairedDiff};
use apr_model::{Cpu, Llama};
use apr_rollout::backend::server::CacheStats;
use apr_rollout::{
    EngineStats, GenerationConfig, Generator, ProblemResult, RolloutConfig, ThreadResult,
};
use serde::Serialize;

/// Where one problem's trees first differ.
#[derive(Debug, Serialize)]
pub struct Divergence {
    /// The problem's index.
    pub problem: usize,
    /// The thread, in depth-first order (0: the root).
    pub thread: usize,
    /// The call of that thread.
    pub call: usize,
    /// Generated tokens the two calls share before they differ.
    pub token: usize,
    /// Up to 80 characters of each side's call text after the shared part.
    pub native: String,
    /// The server's.
    pub server: String,
    /// Whether each side solved the problem.
    pub solved: (bool, bool),
}

/// One side's run.
#[derive(Debug, Serialize)]
pub struct Side {
    /// The backend.
    pub backend: String,
    /// Problems solved, by the official rules.
    pub solved: usize,
    /// Accuracy and its 95% Wilson interval.
    pub accuracy: (f64, f64, f64),
    /// Generated tokens per second of the whole run.
    pub generated_tokens_per_s: f64,
    /// The backend's counters.
    pub stats: EngineStats,
}

/// The comparison.
#[derive(Debug, Serialize)]
pub struct TreeSummary {
    /// Problems compared.
    pub problems: usize,
    /// Problems whose trees (every call's generated ids) are identical.
    pub identical: usize,
    /// The native backend's run.
    pub native: Side,
    /// The server's run.
    pub server: Side,
    /// Server accuracy minus native accuracy, paired bootstrap interval.
    pub accuracy_diff: Option<PairedDiff>,
    /// The server's prefix cache.
    pub cache: Option<CacheStats>,
    /// Each problem whose trees differ.
    pub divergences: Vec<Divergence>,
}

/// Each call's generated ids and text, threads depth first.
fn calls(root: &ThreadResult) -> Vec<Vec<(&[u32], &str)>> {
    root.threads()
        .iter()
        .map(|t| {
            t.calls
                .iter()
                .map(|c| (&c.generated_ids[..], c.text.as_str()))
                .collect()
        })
        .collect()
}

/// Where `a` and `b` first differ, if they do.
fn divergence(i: usize, a: &ProblemResult, b: &ProblemResult) -> Option<Divergence> {
    let (ca, cb) = (calls(&a.root), calls(&b.root));
    let threads = ca.len().max(cb.len());
    for t in 0..threads {
        let (ta, tb) = (ca.get(t), cb.get(t));
        let n = ta.map_or(0, Vec::len).max(tb.map_or(0, Vec::len));
        for c in 0..n {
            let x = ta.and_then(|v| v.get(c)).copied().unwrap_or((&[], ""));
            let y = tb.and_then(|v| v.get(c)).copied().unwrap_or((&[], ""));
            if x.0 == y.0 && x.1 == y.1 {
                continue;
            }
            let token = x.0.iter().zip(y.0).take_while(|(p, q)| p == q).count();
            let chars =
                x.1.chars()
                    .zip(y.1.chars())
                    .take_while(|(p, q)| p == q)
                    .count();
            let tail = |s: &str| s.chars().skip(chars).take(80).collect::<String>();
            return Some(Divergence {
                problem: i,
                thread: t,
                call: c,
                token,
                native: tail(x.1),
                server: tail(y.1),
                solved: (a.solved, b.solved),
            });
        }
    }
    None
}

fn side(backend: &str, results: &[ProblemResult], stats: EngineStats) -> Side {
    let solved = results.iter().filter(|r| r.solved).count();
    let (lo, hi) = wilson_interval(solved, results.len());
    Side {
        backend: backend.into(),
        solved,
        accuracy: (solved as f64 / results.len().max(1) as f64, lo, hi),
        generated_tokens_per_s: stats.generated_tokens as f64 / stats.seconds.max(1e-9),
        stats,
    }
}

/// Runs `cfg` greedily on `problems` natively (`slots` KV slots) and on
/// `server`, which serves `model`, and compares the results.
pub fn compare(
    model: &Llama<Cpu>,
    problems: &[Problem],
    cfg: &RolloutConfig,
    slots: usize,
    server: &GenerationConfig,
) -> Result<TreeSummary> {
    let c = &model.config;
    let mut native = Generator::Native { slots };
    let (a, sa) = native.run(model, problems, cfg, |_| {})?;
    let mut remote = Generator::connect(server, slots, c.max_seq_len, c.vocab_size)?;
    remote.sync(model)?;
    let (b, sb) = remote.run(model, problems, cfg, |_| {})?;
    if a.len() != b.len() {
        return Err(Error::Config(format!(
            "{} results against {}",
            a.len(),
            b.len()
        )));
    }
    let divergences: Vec<Divergence> = a
        .iter()
        .zip(&b)
        .enumerate()
        .filter_map(|(i, (x, y))| divergence(i, x, y))
        .collect();
    let solved = |r: &[ProblemResult]| r.iter().map(|r| r.solved).collect::<Vec<_>>();
    Ok(TreeSummary {
        problems: a.len(),
        identical: a.len() - divergences.len(),
        accuracy_diff: paired_bootstrap(&solved(&a), &solved(&b), 10_000, 0),
        native: side("native", &a, sa),
        server: side(remote.name(), &b, sb),
        cache: remote.cache_stats().cloned(),
        divergences,
    })
}
