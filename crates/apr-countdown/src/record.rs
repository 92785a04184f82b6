//! JSON Lines records with the field names of the public APR datasets, so
//! their files and ours are interchangeable (the recipes that write trace
//! records are in `recipe`).

use crate::error::{Error, Result};
use crate::heuristic::Heuristic;
use crate::log::SearchLog;
use crate::problem::Problem;
use crate::verify::rating_of;
use apr_trace::{Num, TokenStats, TraceDict};
use serde::{Deserialize, Serialize};

/// A problem record: `nums`, `target`, `solution`, `optimal_path`, `start_size`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProblemRecord {
    /// Input numbers.
    pub nums: Vec<Num>,
    /// Target.
    pub target: Num,
    /// The DFS solution's operations, e.g. `["98+3=101", ...]`.
    pub solution: Vec<String>,
    /// The DFS solution as a trace.
    pub optimal_path: String,
    /// Number of input numbers.
    pub start_size: usize,
}

impl ProblemRecord {
    /// The record of a problem, with its DFS solution. Errors if unsolvable.
    pub fn new(problem: &Problem) -> Result<ProblemRecord> {
        let moves = problem
            .solve_dfs()
            .ok_or_else(|| Error::Config(format!("problem {problem:?} has no solution")))?;
        Ok(ProblemRecord {
            nums: problem.nums.clone(),
            target: problem.target,
            solution: moves.iter().map(|m| m.2.to_string()).collect(),
            optimal_path: problem.optimal_path(&moves).render(),
            start_size: problem.nums.len(),
        })
    }

    /// The problem, after checking that the record is consistent.
    pub fn problem(&self) -> std::result::Result<Problem, String> {
        if self.nums.len() < 2 || self.nums.len() > crate::problem::MAX_NUMBERS {
            return Err(format!(
                "nums has {} numbers; 2 to {} are supported",
                self.nums.len(),
                crate::problem::MAX_NUMBERS
            ));
        }
        if self.start_size != self.nums.len() {
            return Err(format!(
                "start_size is {} but nums has {} numbers",
                self.start_size,
                self.nums.len()
            ));
        }
        Ok(Problem {
            nums: self.nums.clone(),
            target: self.target,
        })
    }
}

/// Reads Countdown problems from JSON Lines with `nums` and `target` (as
/// `gen-data problems` writes; trace files work too), at most `limit`.
/// Malformed records are errors naming the file and line; an empty file is
/// an error.
pub fn read_problems(path: &std::path::Path, limit: Option<usize>) -> Result<Vec<Problem>> {
    use std::io::BufRead;
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    if limit == Some(0) {
        return Err(Error::Config(
            "a limit of 0 problems selects none: give 1 or more, or no limit".into(),
        ));
    }
    let f = std::fs::File::open(path).map_err(io)?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        if limit.is_some_and(|n| out.len() >= n) {
            break;
        }
        let bad = |message: String| Error::Record {
            path: path.display().to_string(),
            record: i + 1,
            message,
        };
        let line = match line {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(bad("not UTF-8".into()))
            }
            Err(e) => return Err(io(e)),
        };
        if line.trim().is_empty() {
            continue;
        }
        let r: ProblemRecord = serde_json::from_str(&line).map_err(|e| bad(e.to_string()))?;
        out.push(r.problem().map_err(bad)?);
    }
    if out.is_empty() {
        return Err(Error::Record {
            path: path.display().to_string(),
            record: 0,
            message: "no problems".into(),
        });
    }
    Ok(out)
}

/// A trace record: the problem's fields, then the search's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceRecord {
    /// Input numbers.
    pub nums: Vec<Num>,
    /// Target.
    pub target: Num,
    /// The DFS solution's operations.
    pub solution: Vec<String>,
    /// The DFS solution as a trace.
    pub optimal_path: String,
    /// Number of input numbers.
    pub start_size: usize,
    /// The search's text (APR: the root thread's last call).
    pub search_path: String,
    /// `1 - (explored + 1) / max_nodes` if solved, else 0.
    pub rating: f64,
    /// `sosp_{beam}` or `apr_{beam}`.
    pub search_type: String,
    /// `mult_heuristic` or `sum_heuristic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heuristic: Option<String>,
    /// Probability of a promising expansion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promising_threshold: Option<f64>,
    /// Beam of the (top) search.
    pub beam_size: usize,
    /// APR: beam of child threads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_call_beam_size: Option<usize>,
    /// APR: every call of every thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_dict: Option<TraceDict>,
    /// Total tokens (shared prefixes once), in this project's tokenizer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_count: Option<usize>,
    /// Tokens of the longest call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longest_seq_token_count: Option<usize>,
    /// Total tokens per call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_seq_token_count: Option<f64>,
    /// Mean tokens of a child call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_sub_seq_token_count: Option<f64>,
    /// Children per spawn round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_call_count: Option<f64>,
    /// Ours: sequential tokens (the critical path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequential_token_count: Option<usize>,
    /// Ours: child threads at every depth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_thread_count: Option<usize>,
}

/// What a record says about the search that made it.
pub(crate) struct RunMeta {
    pub search_type: String,
    pub beam: usize,
    pub sub_beam: Option<usize>,
    pub heuristic: Heuristic,
    pub promising: f64,
}

impl TraceRecord {
    /// The record of a solver log. With `with_text`, `search_path`, (for
    /// APR) `trace_dict` and the token counts are filled in; without, they
    /// are left empty for `json::write_log_record`, which renders the text
    /// straight into the output and counts tokens as it renders.
    pub(crate) fn from_log(
        p: &ProblemRecord,
        log: &SearchLog,
        meta: RunMeta,
        with_text: bool,
    ) -> Self {
        let last = log.root.calls.last().map_or(&[][..], Vec::as_slice);
        let (explored, goal) = SearchLog::explored_and_goal(last);
        let is_apr = meta.sub_beam.is_some();
        let mut r = TraceRecord {
            nums: p.nums.clone(),
            target: p.target,
            solution: p.solution.clone(),
            optimal_path: p.optimal_path.clone(),
            start_size: p.start_size,
            search_path: if with_text {
                log.render(last)
            } else {
                String::new()
            },
            rating: rating_of(explored, goal, p.start_size),
            search_type: meta.search_type,
            heuristic: Some(meta.heuristic.name().into()),
            promising_threshold: Some(meta.promising),
            beam_size: meta.beam,
            sub_call_beam_size: meta.sub_beam,
            trace_dict: (with_text && is_apr).then(|| log.dict()),
            token_count: None,
            longest_seq_token_count: None,
            avg_seq_token_count: None,
            avg_sub_seq_token_count: None,
            sub_call_count: None,
            sequential_token_count: None,
            child_thread_count: None,
        };
        if with_text {
            r.set_tokens(&log.token_stats());
        }
        r
    }

    pub(crate) fn set_tokens(&mut self, s: &TokenStats) {
        self.token_count = Some(s.total);
        self.longest_seq_token_count = Some(s.longest_call);
        self.avg_seq_token_count = Some(s.avg_call());
        self.avg_sub_seq_token_count = Some(s.avg_child_call());
        self.sub_call_count = Some(s.children_per_round());
        self.sequential_token_count = Some(s.sequential);
        self.child_thread_count = Some(s.child_threads);
    }

    /// The problem part of the record.
    pub fn problem_record(&self) -> ProblemRecord {
        ProblemRecord {
            nums: self.nums.clone(),
            target: self.target,
            solution: self.solution.clone(),
            optimal_path: self.optimal_path.clone(),
            start_size: self.start_size,
        }
    }

    /// Whether the search solved the problem (`rating > 0`).
    pub fn solved(&self) -> bool {
        self.rating > 0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_problems_names_the_line_of_bad_utf8_and_refuses_a_zero_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.jsonl");
        let p = Problem {
            nums: vec![1, 2],
            target: 3,
        };
        let line = serde_json::to_string(&ProblemRecord::new(&p).unwrap()).unwrap();
        let mut bytes = format!("{line}\n").into_bytes();
        bytes.extend_from_slice(&line.as_bytes()[..5]);
        bytes.extend_from_slice(b"\xff\n");
        std::fs::write(&path, &bytes).unwrap();
        let e = read_problems(&path, None).unwrap_err().to_string();
        assert!(e.ends_with("p.jsonl: record 2: not UTF-8"), "{e}");
        // The first line alone reads.
        assert_eq!(read_problems(&path, Some(1)).unwrap().len(), 1);
        let e = read_problems(&path, Some(0)).unwrap_err().to_string();
        assert!(e.contains("a limit of 0 problems selects none"), "{e}");
        assert!(!e.contains("p.jsonl"), "{e}");
    }
}
