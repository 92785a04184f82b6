//! JSON Lines records with the field names of the public APR datasets, so
//! their files and ours are interchangeable, and the recipes that draw each
//! trace's solver parameters.

use crate::apr::{apr_log, AprParams};
use crate::error::{Error, Result};
use crate::heuristic::Heuristic;
use crate::json::write_log_record;
use crate::log::SearchLog;
use crate::problem::Problem;
use crate::rng::{derive_seed, Rng};
use crate::search::Pruning;
use crate::sosp::{sosp_log, SospParams};
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
struct RunMeta {
    search_type: String,
    beam: usize,
    sub_beam: Option<usize>,
    heuristic: Heuristic,
    promising: f64,
}

impl TraceRecord {
    /// The record of a solver log. With `with_text`, `search_path`, (for
    /// APR) `trace_dict` and the token counts are filled in; without, they
    /// are left empty for [`write_log_record`], which renders the text
    /// straight into the output and counts tokens as it renders.
    fn from_log(p: &ProblemRecord, log: &SearchLog, meta: RunMeta, with_text: bool) -> Self {
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

/// The reference recipe for SoS+ data: beam uniform in `min_beam..=max_beam`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SospRecipe {
    /// Smallest beam.
    pub min_beam: usize,
    /// Largest beam.
    pub max_beam: usize,
    /// Probability that an expansion is promising.
    pub promising: f64,
    /// Heuristic.
    pub heuristic: Heuristic,
    /// Successor pruning.
    pub pruning: Pruning,
}

impl Default for SospRecipe {
    fn default() -> Self {
        SospRecipe {
            min_beam: 1,
            max_beam: 5,
            promising: 0.5,
            heuristic: Heuristic::Mult,
            pruning: Pruning::Beam,
        }
    }
}

/// The reference recipe for APR data: beam uniform in `min_beam..=max_beam`,
/// child beam uniform in `beam..=max_sub_beam` (or `max_sub_beam` when it is
/// not above the beam).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AprRecipe {
    /// Smallest beam.
    pub min_beam: usize,
    /// Largest beam.
    pub max_beam: usize,
    /// Largest child beam.
    pub max_sub_beam: usize,
    /// Probability that an eligible expansion spawns.
    pub promising: f64,
    /// Heuristic.
    pub heuristic: Heuristic,
    /// Successor pruning.
    pub pruning: Pruning,
    /// Threads at levels below this may spawn (1: the reference).
    pub max_spawn_depth: u32,
}

impl Default for AprRecipe {
    fn default() -> Self {
        AprRecipe {
            min_beam: 1,
            max_beam: 10,
            max_sub_beam: 15,
            promising: 0.9,
            heuristic: Heuristic::Mult,
            pruning: Pruning::Beam,
            max_spawn_depth: 1,
        }
    }
}

fn check_beams(min: usize, max: usize) -> Result<()> {
    if min == 0 || min > max {
        return Err(Error::Config(format!(
            "beam range must be 1 <= min <= max, got {min}..={max}"
        )));
    }
    Ok(())
}

fn check_p(p: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::Config(format!(
            "promising probability must be in [0, 1], got {p}"
        )));
    }
    Ok(())
}

/// Stream ids that keep the solvers' randomness apart.
const SOSP_STREAM: u64 = 0x534f_5350;
const APR_STREAM: u64 = 0x4150_5200;

impl SospRecipe {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        check_beams(self.min_beam, self.max_beam)?;
        check_p(self.promising)
    }

    /// Draws the parameters of one search.
    pub fn draw(&self, rng: &mut Rng) -> SospParams {
        SospParams {
            beam: rng.range_inclusive(self.min_beam as u64, self.max_beam as u64) as usize,
            promising: self.promising,
            heuristic: self.heuristic,
            pruning: self.pruning,
        }
    }

    fn run(&self, problem: &Problem, seed: u64, index: u64) -> (RunMeta, SearchLog) {
        let mut rng = Rng::new(derive_seed(seed, SOSP_STREAM, index));
        let params = self.draw(&mut rng);
        let log = sosp_log(problem, &params, &mut rng);
        let meta = RunMeta {
            search_type: format!("sosp_{}", params.beam),
            beam: params.beam,
            sub_beam: None,
            heuristic: self.heuristic,
            promising: self.promising,
        };
        (meta, log)
    }
}

impl AprRecipe {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        check_beams(self.min_beam, self.max_beam)?;
        if self.max_sub_beam == 0 {
            return Err(Error::Config("max_sub_beam must be at least 1".into()));
        }
        check_p(self.promising)
    }

    /// Draws the parameters of one search.
    pub fn draw(&self, rng: &mut Rng) -> AprParams {
        let beam = rng.range_inclusive(self.min_beam as u64, self.max_beam as u64) as usize;
        let sub_beam = if self.max_sub_beam > beam {
            rng.range_inclusive(beam as u64, self.max_sub_beam as u64) as usize
        } else {
            self.max_sub_beam
        };
        AprParams {
            beam,
            sub_beam,
            promising: self.promising,
            heuristic: self.heuristic,
            pruning: self.pruning,
            max_spawn_depth: self.max_spawn_depth,
        }
    }

    fn run(&self, problem: &Problem, seed: u64, index: u64) -> (RunMeta, SearchLog) {
        let mut rng = Rng::new(derive_seed(seed, APR_STREAM, index));
        let params = self.draw(&mut rng);
        let log = apr_log(problem, &params, &mut rng);
        let meta = RunMeta {
            search_type: format!("apr_{}", params.beam),
            beam: params.beam,
            sub_beam: Some(params.sub_beam),
            heuristic: self.heuristic,
            promising: self.promising,
        };
        (meta, log)
    }
}

/// Either solver's recipe, for code that writes traces of both.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recipe {
    /// APR traces.
    Apr(AprRecipe),
    /// SoS+ traces.
    Sosp(SospRecipe),
}

impl Recipe {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        match self {
            Recipe::Apr(r) => r.validate(),
            Recipe::Sosp(r) => r.validate(),
        }
    }

    fn run(&self, problem: &Problem, seed: u64, index: u64) -> (RunMeta, SearchLog) {
        match self {
            Recipe::Apr(r) => r.run(problem, seed, index),
            Recipe::Sosp(r) => r.run(problem, seed, index),
        }
    }

    /// The trace record of problem `index` of a file, under master `seed`.
    pub fn record(
        &self,
        p: &ProblemRecord,
        problem: &Problem,
        seed: u64,
        index: u64,
    ) -> TraceRecord {
        let (meta, log) = self.run(problem, seed, index);
        TraceRecord::from_log(p, &log, meta, true)
    }

    /// Appends the JSON line of [`record`](Self::record) (the same bytes),
    /// rendered straight from the solver's log.
    pub fn write_record(
        &self,
        p: &ProblemRecord,
        problem: &Problem,
        seed: u64,
        index: u64,
        out: &mut Vec<u8>,
    ) {
        let (meta, log) = self.run(problem, seed, index);
        let with_dict = matches!(self, Recipe::Apr(_));
        write_log_record(
            TraceRecord::from_log(p, &log, meta, false),
            &log,
            with_dict,
            out,
        );
    }

    /// `APR` or `SoS+`.
    pub fn solver_name(&self) -> &'static str {
        match self {
            Recipe::Apr(_) => "APR",
            Recipe::Sosp(_) => "SoS+",
        }
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
