//! Countdown as a rollout task: the root prompt of each trace mode and
//! grading by the official checker's rules ([`crate::score()`]).

use crate::problem::Problem;
use crate::score::score;
use apr_trace::{Grade, Task, TraceMode};
use serde_json::{Map, Value};

impl Task for Problem {
    fn root_prompt(&self, mode: TraceMode) -> String {
        mode.root_prompt(self.target, &self.nums)
    }

    fn grade(&self, mode: TraceMode, final_call: &str) -> Grade {
        let s = score(self, mode, final_call);
        Grade {
            solved: s.solved(),
            answer: s.answer_strings(),
            unsolved: s.verdict.err().map(|e| e.to_string()),
        }
    }

    fn describe(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("nums".into(), self.nums.iter().copied().collect());
        m.insert("target".into(), self.target.into());
        m
    }
}
