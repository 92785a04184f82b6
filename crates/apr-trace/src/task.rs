//! The problem side of a rollout: what an engine needs to start a problem
//! and grade its answer, and nothing else of it. A task crate implements
//! [`Task`] for its problems (`apr-countdown` for Countdown); the rollout
//! engine is generic over it and never sees the task's rules.

use crate::mode::TraceMode;

/// One problem of a task.
pub trait Task {
    /// The text of the root thread's first call for a model trained on
    /// `mode` traces (without the conditioning prefix).
    fn root_prompt(&self, mode: TraceMode) -> String;

    /// Grades the root thread's final call (for a single-thread mode, the
    /// whole trace) by the task's official rules.
    fn grade(&self, mode: TraceMode, final_call: &str) -> Grade;

    /// The problem's fields recorded beside each result (Countdown:
    /// `nums` and `target`), in the order they are written.
    fn describe(&self) -> serde_json::Map<String, serde_json::Value>;
}

/// The grade of an answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grade {
    /// Whether the answer solves the problem.
    pub solved: bool,
    /// The answer's steps as text, solved or not; `None` when none could be
    /// read.
    pub answer: Option<Vec<String>>,
    /// Why it does not solve the problem (`None` when solved).
    pub unsolved: Option<String>,
}
