//! The engine's results: a finished problem's thread tree, its grade by the
//! task's rules, and its token and finish-reason counts.

use super::Engine;
use crate::backend::Backend;
use crate::error::Result;
use crate::result::{FinishReason, ProblemResult, ThreadResult};
use apr_trace::dict_stats;
use std::collections::BTreeMap;

impl<B: Backend> Engine<B> {
    pub(super) fn thread_result(&mut self, t: usize) -> ThreadResult {
        let rounds = std::mem::take(&mut self.threads[t].rounds);
        let children = rounds
            .into_iter()
            .map(|r| r.into_iter().map(|k| self.thread_result(k)).collect())
            .collect();
        let th = &mut self.threads[t];
        ThreadResult {
            calls: std::mem::take(&mut th.calls),
            children,
            finish: th
                .finish
                .clone()
                .unwrap_or_else(|| FinishReason::Protocol("unfinished".into())),
        }
    }

    pub(super) fn result<P: apr_trace::Task>(
        &mut self,
        task: usize,
        problems: &[P],
    ) -> Result<ProblemResult> {
        let root = self.tasks[task].root;
        let tree = self.thread_result(root);
        let tk = &self.tasks[task];
        let p = &problems[tk.problem];
        let dict = tree.dict();
        let threads = tree.threads();
        let parse_error = tree.first_parse_error("0");
        let parses = parse_error.is_none();
        let mut reasons = BTreeMap::new();
        for t in &threads {
            *reasons.entry(t.finish.name().to_string()).or_insert(0) += 1;
        }
        let text = tree.calls.last().map_or("", |c| c.text.as_str());
        let grade = p.grade(self.cfg.mode.trace_mode(), text);
        let tok = &self.tok;
        let stats = dict_stats(&dict, &|s| tok.count(s));
        Ok(ProblemResult {
            problem: tk.problem,
            sample: tk.sample,
            problem_fields: p.describe(),
            trace_dict: dict,
            solved: grade.solved,
            answer: grade.answer,
            unsolved: grade.unsolved,
            parses,
            parse_error,
            total_tokens: stats.total,
            sequential_tokens: stats.sequential,
            generated_tokens: tk.generated,
            prefilled_tokens: tk.prefilled,
            reused_tokens: tk.reused,
            child_threads: stats.child_threads,
            latency_s: tk.latency,
            finish_reasons: reasons,
            root: tree,
        })
    }
}
