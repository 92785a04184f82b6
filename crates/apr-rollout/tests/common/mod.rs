//! Helpers shared by the engine tests: running a scripted model, the
//! default APR rollout config and a small problem.
#![allow(dead_code)]

use apr_countdown::{apr, AprParams, Problem, ProblemSpec, Rng};
use apr_rollout::mock::ScriptedModel;
use apr_rollout::{Engine, Limits, ProblemResult, RolloutConfig};
use apr_trace::{TraceDict, TraceMode};
use std::collections::HashSet;

/// Runs `ps` on the scripted model `m` under `cfg`.
pub fn run(m: &mut ScriptedModel, ps: &[Problem], cfg: RolloutConfig) -> Vec<ProblemResult> {
    Engine::new(m, cfg).unwrap().run(ps, |_| {}).unwrap()
}

/// APR rollouts with nesting up to depth 3.
pub fn apr_cfg() -> RolloutConfig {
    RolloutConfig {
        limits: Limits {
            max_depth: 3,
            ..Limits::default()
        },
        ..RolloutConfig::default()
    }
}

/// A 4-number problem with a known solution (`5, 39, 9, 87` to 62).
pub fn toy() -> Problem {
    Problem {
        nums: vec![5, 39, 9, 87],
        target: 62,
    }
}

/// `n` problems of 4 or 5 numbers.
pub fn problems(n: u64, seed: u64) -> Vec<Problem> {
    let spec = ProblemSpec {
        min_numbers: 4,
        max_numbers: 5,
        ..ProblemSpec::default()
    };
    let none = HashSet::new();
    (0..n)
        .map(|i| spec.problem(seed, i, &none).unwrap())
        .collect()
}

/// The APR solver's tree of each problem, spawning to `depth`, and whether
/// it solved it.
pub fn solver_dicts(ps: &[Problem], depth: u32) -> Vec<(TraceDict, bool)> {
    ps.iter()
        .enumerate()
        .map(|(i, p)| {
            let params = AprParams::always_spawning(3, 4, depth);
            let out = apr(p, &params, &mut Rng::new(i as u64));
            (out.tree.to_dict(), out.solution.is_some())
        })
        .collect()
}

/// A scripted model that replays each problem's solver tree.
pub fn scripted(ps: &[Problem], dicts: &[(TraceDict, bool)], slots: usize) -> ScriptedModel {
    let mut m = ScriptedModel::new(slots, 8192);
    for (p, (d, _)) in ps.iter().zip(dicts) {
        m = m
            .with_tree(d, &TraceMode::Apr.root_prompt(p.target, &p.nums), None)
            .unwrap();
    }
    m
}
