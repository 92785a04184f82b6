//! Statistics and re-checks of problems and traces files, ours or the
//! public datasets'.

use crate::error::{Error, Result};
use crate::jsonl::read_records;
use apr_countdown::{verify_ops, verify_text, ProblemRecord, TraceRecord};
use apr_trace::{check_protocol, parse_trace, tree_stats, Op, ThreadTree, TraceTokenizer};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

/// Summary of a list of numbers.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Summary {
    /// How many.
    pub count: usize,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile (nearest rank).
    pub p95: f64,
    /// Largest.
    pub max: f64,
}

impl Summary {
    /// Summarises `v` (any order).
    pub fn of(v: &[f64]) -> Summary {
        if v.is_empty() {
            return Summary::default();
        }
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        let rank = |q: f64| s[((q * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
        Summary {
            count: s.len(),
            mean: s.iter().sum::<f64>() / s.len() as f64,
            p50: rank(0.5),
            p95: rank(0.95),
            max: s[s.len() - 1],
        }
    }

    fn line(&self, name: &str) -> String {
        format!(
            "  {name:<34} n={:<8} mean={:<9.1} p50={:<8.0} p95={:<8.0} max={:.0}\n",
            self.count, self.mean, self.p50, self.p95, self.max
        )
    }
}

/// Statistics of a file.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FileStats {
    /// The file.
    pub path: String,
    /// `problems`, `sosp` or `apr` (from the records).
    pub kind: String,
    /// Records read.
    pub records: usize,
    /// Records by count of input numbers.
    pub start_sizes: BTreeMap<usize, usize>,
    /// Records whose `solution` field does not verify.
    pub bad_solutions: usize,
    /// Records sharing a (sorted numbers, target) key with an earlier one.
    pub duplicate_keys: usize,
    /// Traces: share solved (`rating > 0`).
    pub solve_rate: f64,
    /// Traces: solved records whose search path does not verify.
    pub unverified_solved: usize,
    /// Traces: records whose text breaks the grammar or the protocol.
    pub protocol_errors: usize,
    /// First few problems found, with record numbers.
    pub first_errors: Vec<String>,
    /// Sequence lengths in tokens (BOS and EOS included), by sequence kind:
    /// `sosp`, `apr_parent_call`, `apr_child_call`.
    pub sequence_tokens: BTreeMap<String, Summary>,
    /// Total tokens per problem (shared prefixes once).
    pub total_tokens: Summary,
    /// Sequential tokens per problem.
    pub sequential_tokens: Summary,
    /// APR: child threads per problem.
    pub child_threads: Summary,
    /// Beam sizes.
    pub beam: Summary,
    /// Traces: share of records solved with every sequence (each call of
    /// each thread, BOS and EOS included) within a context window, at
    /// each of [`WINDOWS`]: the solver's cumulative accuracy at that
    /// window (paper fig. 4b, for the symbolic solvers).
    pub solved_within: Vec<(usize, f64)>,
}

/// Context windows at which [`FileStats::solved_within`] is measured.
pub const WINDOWS: [usize; 7] = [256, 512, 768, 1024, 2048, 4096, 8192];

impl FileStats {
    /// Records flagged by the checks: solutions that do not verify, solved
    /// traces whose search does not verify, grammar or protocol errors.
    pub fn invalid_records(&self) -> usize {
        self.bad_solutions + self.unverified_solved + self.protocol_errors
    }

    fn error(&mut self, record: usize, msg: impl std::fmt::Display) {
        if self.first_errors.len() < 10 {
            self.first_errors.push(format!("record {record}: {msg}"));
        }
    }

    /// A human-readable report.
    pub fn report(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{}: {} {} records", self.path, self.records, self.kind);
        let _ = writeln!(s, "  start sizes: {:?}", self.start_sizes);
        let _ = writeln!(
            s,
            "  solutions not verifying: {}; duplicate (sorted nums, target) keys: {}",
            self.bad_solutions, self.duplicate_keys
        );
        if self.kind != "problems" {
            let _ = writeln!(
                s,
                "  solve rate: {:.4}; solved but not verifying: {}; grammar/protocol errors: {}",
                self.solve_rate, self.unverified_solved, self.protocol_errors
            );
            for (k, v) in &self.sequence_tokens {
                s.push_str(&v.line(&format!("tokens per {k} sequence")));
            }
            s.push_str(&self.total_tokens.line("total tokens per problem"));
            s.push_str(&self.sequential_tokens.line("sequential tokens per problem"));
            if self.kind == "apr" {
                s.push_str(&self.child_threads.line("child threads per problem"));
            }
            s.push_str(&self.beam.line("beam"));
            let w: Vec<String> = self
                .solved_within
                .iter()
                .map(|(w, r)| format!("{w}: {r:.4}"))
                .collect();
            let _ = writeln!(s, "  solved within context window  {}", w.join(", "));
        }
        for e in &self.first_errors {
            let _ = writeln!(s, "  ! {e}");
        }
        s
    }
}

fn op_from_str(s: &str) -> Option<Op> {
    let line = format!("Exploring Operation: {s}, Resulting Numbers: []");
    match apr_trace::parse_line(&line) {
        Ok(apr_trace::Line::Exploring { op, .. }) => Some(op),
        _ => None,
    }
}

fn check_problem(
    st: &mut FileStats,
    i: usize,
    p: &ProblemRecord,
    keys: &mut HashSet<(Vec<u64>, u64)>,
) {
    *st.start_sizes.entry(p.start_size).or_default() += 1;
    let problem = match p.problem() {
        Ok(pr) => pr,
        Err(e) => {
            st.bad_solutions += 1;
            st.error(i, e);
            return;
        }
    };
    if !keys.insert(problem.key()) {
        st.duplicate_keys += 1;
    }
    let ops: Option<Vec<Op>> = p.solution.iter().map(|s| op_from_str(s)).collect();
    let ok = ops.is_some_and(|ops| verify_ops(&problem, &ops).is_ok())
        && verify_text(&problem, &p.optimal_path).is_ok();
    if !ok {
        st.bad_solutions += 1;
        st.error(i, "solution or optimal_path does not verify");
    }
}

/// Reads a problems or traces file and computes its statistics, checking
/// every record. Malformed JSON is an error naming the record; records that
/// break the trace grammar or protocol are counted and reported.
pub fn file_stats(path: &Path) -> Result<FileStats> {
    let values: Vec<Value> = read_records(path)?;
    let p = path.display().to_string();
    let mut st = FileStats {
        path: p.clone(),
        records: values.len(),
        ..FileStats::default()
    };
    let is_trace = values[0].get("search_path").is_some();
    let mut keys = HashSet::new();
    let tok = TraceTokenizer::new();
    let mut seq: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let (mut total, mut sequential, mut kids, mut beams) = (vec![], vec![], vec![], vec![]);
    let mut solved = 0;
    let mut within = [0usize; WINDOWS.len()];
    for (k, v) in values.into_iter().enumerate() {
        let i = k + 1;
        let rec_err = |e: serde_json::Error| Error::Record {
            path: p.clone(),
            record: i,
            message: e.to_string(),
        };
        if !is_trace {
            let r: ProblemRecord = serde_json::from_value(v).map_err(rec_err)?;
            check_problem(&mut st, i, &r, &mut keys);
            continue;
        }
        let r: TraceRecord = serde_json::from_value(v).map_err(rec_err)?;
        let problem_record = r.problem_record();
        check_problem(&mut st, i, &problem_record, &mut keys);
        beams.push(r.beam_size as f64);
        let is_apr = r.trace_dict.is_some();
        st.kind = if is_apr { "apr" } else { "sosp" }.into();
        if r.solved() {
            solved += 1;
            if let Ok(problem) = problem_record.problem() {
                if let Err(e) = verify_text(&problem, &r.search_path) {
                    st.unverified_solved += 1;
                    st.error(i, format!("solved but search_path does not verify: {e}"));
                }
            }
        }
        let tree = match &r.trace_dict {
            Some(d) => match ThreadTree::from_dict(d) {
                Ok(t) => {
                    if d.main_calls.last() != Some(&r.search_path) {
                        st.protocol_errors += 1;
                        st.error(i, "search_path is not the last main call");
                    }
                    if let Err(e) = check_protocol(d) {
                        st.protocol_errors += 1;
                        st.error(i, e);
                    }
                    t
                }
                Err(e) => {
                    st.protocol_errors += 1;
                    st.error(i, e);
                    continue;
                }
            },
            None => match parse_trace(&r.search_path) {
                Ok(t) => ThreadTree::single(t),
                Err(e) => {
                    st.protocol_errors += 1;
                    st.error(i, e);
                    continue;
                }
            },
        };
        let s = tree_stats(&tree);
        total.push(s.total as f64);
        sequential.push(s.sequential as f64);
        kids.push(s.child_threads as f64);
        let mut longest = 0;
        let mut push = |kind: &str, n: usize| {
            longest = longest.max(n);
            seq.entry(kind.into()).or_default().push(n as f64);
        };
        if is_apr {
            for c in &tree.calls {
                push("apr_parent_call", TraceTokenizer::count_trace(c) + 2);
            }
            for child in tree.children.iter().flatten() {
                for c in child.all_calls() {
                    push("apr_child_call", TraceTokenizer::count_trace(c) + 2);
                }
            }
        } else {
            push("sosp", tok.count(&r.search_path) + 2);
        }
        if r.solved() {
            for (n, w) in within.iter_mut().zip(WINDOWS) {
                *n += (longest <= w) as usize;
            }
        }
    }
    if !is_trace {
        st.kind = "problems".into();
    }
    st.solve_rate = solved as f64 / st.records as f64;
    st.sequence_tokens = seq.into_iter().map(|(k, v)| (k, Summary::of(&v))).collect();
    st.total_tokens = Summary::of(&total);
    st.sequential_tokens = Summary::of(&sequential);
    st.child_threads = Summary::of(&kids);
    st.beam = Summary::of(&beams);
    if is_trace {
        st.solved_within = WINDOWS
            .iter()
            .zip(within)
            .map(|(&w, n)| (w, n as f64 / st.records as f64))
            .collect();
    }
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference code's own traces: the solved share within a window
    /// never falls as the window grows, reaches the solve rate once every
    /// sequence fits, and is below it at 512 tokens (some 4-number searches
    /// that reach their goal are longer).
    #[test]
    fn solved_within_window_of_the_reference_traces() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/reference-samples");
        for f in ["apr.jsonl", "sosp.jsonl"] {
            let st = file_stats(&root.join(f)).unwrap();
            let w: Vec<f64> = st.solved_within.iter().map(|x| x.1).collect();
            assert_eq!(w.len(), WINDOWS.len(), "{f}");
            assert!(w.windows(2).all(|p| p[0] <= p[1]), "{f}: {w:?}");
            assert_eq!(w[WINDOWS.len() - 1], st.solve_rate, "{f}");
            assert!(w[1] < st.solve_rate, "{f}: {w:?}");
            assert!(st.report().contains("solved within context window"));
        }
        let problems = file_stats(&root.join("problems.jsonl")).unwrap();
        assert!(problems.solved_within.is_empty());
    }
}
