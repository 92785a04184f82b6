//! # apr-countdown
//!
//! The Countdown environment of Adaptive Parallel Reasoning, with no tensor
//! dependency: problems ([`Problem`], [`ProblemSpec`]), the move rules
//! ([`rules`]), answer scoring by the official checker's rules ([`score()`]),
//! a verifier of typed traces with failure reasons ([`verify_text`]), the
//! reward, the two heuristics ([`Heuristic`]), and three symbolic solvers:
//! exhaustive DFS ([`Problem::solve_dfs`], the reference solution and
//! `optimal_path`), SoS+ ([`sosp()`]) and APR ([`apr()`], producing the whole
//! thread tree). Every solver parameter of the reference is a parameter
//! here; all randomness comes from a seeded [`Rng`], so a seed gives the same
//! data on any machine and any number of threads.
//!
//! Departures from the reference code are documented where they are made:
//! ties in the open set are first-in-first-out, the APR solver names the
//! right node after a spawn round, `optimal_path` keeps duplicate numbers,
//! and APR may spawn below level 1 ([`AprParams::max_spawn_depth`]).

pub mod apr;
pub mod error;
pub mod heuristic;
mod json;
pub mod log;
mod node;
pub mod problem;
pub mod recipe;
pub mod record;
pub mod rng;
pub mod rules;
pub mod score;
mod search;
pub mod sosp;
mod task;
pub mod verify;

pub use apr::{apr, apr_log, AprOutput, AprParams};
pub use error::{Error, Result};
pub use heuristic::{Heuristic, Scorer};
pub use log::{Event, SearchLog, ThreadLog};
pub use problem::{Problem, ProblemKey, ProblemSpec};
pub use recipe::{AprRecipe, Recipe, SospRecipe};
pub use record::{read_problems, ProblemRecord, TraceRecord};
pub use rng::{derive_seed, Rng};
pub use score::{reward, score, Score, Unsolved};
pub use search::{MoveOrder, Pruning};
pub use sosp::{sosp, sosp_log, SospOutput, SospParams};
pub use verify::{rating, verify_ops, verify_path, verify_text, verify_trace, VerifyFailure};
