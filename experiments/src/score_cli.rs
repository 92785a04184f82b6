//! `score`: scores a file of texts by the official checker's rules
//! ([`apr_countdown::score()`]), so that outputs of other systems (the
//! official models, a vLLM or SGLang server) are judged exactly as ours.
//!
//! Input: JSON Lines, each with `nums`, `target` and `search_path` (for
//! APR the root thread's final call, join blocks included: the last entry
//! of `trace_dict.main_calls`, as the official eval reads it; for SoS+ the
//! whole trace). Output: each input line with `solved` and `reason` (empty
//! when solved) added. A summary goes to stderr.

use crate::error::{Error, Result};
use apr_countdown::{score, Problem};
use apr_model::checkpoint::write_atomic;
use apr_trace::TraceMode;
use clap::Parser;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Score model outputs by the official checker's rules.
#[derive(Debug, Parser)]
#[command(name = "score", version)]
pub struct Cli {
    /// How to read the answer: `apr` (the root's final call) or `sosp`.
    #[arg(long)]
    pub mode: TraceMode,
    /// Input JSON Lines with `nums`, `target`, `search_path`.
    #[arg(long)]
    pub traces: PathBuf,
    /// Output JSON Lines (written atomically).
    #[arg(long)]
    pub out: PathBuf,
}

/// What a file scored.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tally {
    /// Lines scored.
    pub lines: usize,
    /// Lines solved.
    pub solved: usize,
    /// Unsolved lines by the kind of reason (the text before the first `:`).
    pub reasons: BTreeMap<String, usize>,
}

fn field<'a>(m: &'a Map<String, Value>, name: &str, line: usize, path: &str) -> Result<&'a Value> {
    m.get(name).ok_or_else(|| Error::Record {
        path: path.into(),
        record: line,
        message: format!("no `{name}` field"),
    })
}

/// Scores one input line (1-based `line`), returning the output object.
fn score_line(
    text: &str,
    mode: TraceMode,
    line: usize,
    path: &str,
    t: &mut Tally,
) -> Result<Value> {
    let bad = |message: String| Error::Record {
        path: path.into(),
        record: line,
        message,
    };
    let mut m: Map<String, Value> = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let nums: Vec<u64> = serde_json::from_value(field(&m, "nums", line, path)?.clone())
        .map_err(|e| bad(format!("`nums`: {e}")))?;
    let target: u64 = serde_json::from_value(field(&m, "target", line, path)?.clone())
        .map_err(|e| bad(format!("`target`: {e}")))?;
    let Some(search_path) = field(&m, "search_path", line, path)?.as_str() else {
        return Err(bad("`search_path` is not a string".into()));
    };
    let s = score(&Problem { nums, target }, mode, search_path);
    t.lines += 1;
    t.solved += s.solved() as usize;
    let reason = s.reason();
    if !reason.is_empty() {
        let kind = reason.split(':').next().unwrap_or_default().to_string();
        *t.reasons.entry(kind).or_insert(0) += 1;
    }
    m.insert("solved".into(), Value::Bool(s.solved()));
    m.insert("reason".into(), Value::String(reason));
    Ok(Value::Object(m))
}

/// Scores `cli.traces` into `cli.out` and returns the tally.
pub fn run(cli: &Cli) -> Result<Tally> {
    let path = cli.traces.display().to_string();
    let input = std::fs::read_to_string(&cli.traces).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    let mut t = Tally::default();
    let mut out = Vec::with_capacity(input.len() + input.len() / 8);
    for (i, text) in input.lines().enumerate() {
        if text.trim().is_empty() {
            continue;
        }
        let v = score_line(text, cli.mode, i + 1, &path, &mut t)?;
        serde_json::to_writer(&mut out, &v).map_err(|e| Error::Config(e.to_string()))?;
        out.push(b'\n');
    }
    if t.lines == 0 {
        return Err(Error::Empty { path });
    }
    write_atomic(&cli.out, &out)?;
    Ok(t)
}

/// The stderr summary: accuracy with its 95% Wilson interval, and the
/// reasons of the failures.
pub fn summary(mode: TraceMode, t: &Tally) -> String {
    let (lo, hi) = apr_eval::metrics::wilson_interval(t.solved, t.lines);
    let acc = t.solved as f64 / t.lines.max(1) as f64;
    let mut s = format!(
        "score ({mode}): {}/{} solved, {:.1}% (95% interval {:.1}-{:.1}%)",
        t.solved,
        t.lines,
        100.0 * acc,
        100.0 * lo,
        100.0 * hi
    );
    for (k, n) in &t.reasons {
        s.push_str(&format!("; {k}: {n}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_their_fields_and_gain_the_verdict() {
        let mut t = Tally::default();
        let text = r#"{"id": 7, "nums": [10, 50, 7], "target": 70, "search_path": "no answer"}"#;
        let v = score_line(text, TraceMode::Sosp, 1, "x", &mut t).unwrap();
        assert_eq!(v["id"], 7);
        assert_eq!(v["solved"], false);
        assert!(v["reason"].as_str().unwrap().starts_with("no answer"));
        assert_eq!(t.reasons.get("no answer"), Some(&1));
        for (bad, what) in [
            (r#"{"nums": [1], "target": 3}"#, "search_path"),
            (r#"{"nums": "x", "target": 3, "search_path": ""}"#, "nums"),
            ("not json", "expected"),
        ] {
            let e = score_line(bad, TraceMode::Apr, 4, "f.jsonl", &mut t).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.contains("f.jsonl: record 4") && msg.contains(what),
                "{msg}"
            );
        }
    }
}
