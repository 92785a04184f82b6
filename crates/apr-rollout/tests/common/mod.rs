//! Helpers shared by the engine tests: running a scripted model, the
//! default APR rollout config and a small problem.
#![allow(dead_code)]

use apr_countdown::Problem;
use apr_rollout::mock::ScriptedModel;
use apr_rollout::{Engine, Limits, ProblemResult, RolloutConfig};

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
