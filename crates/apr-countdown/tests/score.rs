//! The scorer on the reference code's own traces: every record of
//! `datasets/reference-samples` (a copy of `shared/data/reference-samples`)
//! scores as its recorded `rating` says (solved when the rating is above 0),
//! APR records on the root's final call as the official eval reads it, SoS+
//! records on the whole search path.

use apr_countdown::{score, Problem, TraceRecord};
use apr_trace::TraceMode;

fn records(name: &str) -> Vec<TraceRecord> {
    let path = format!(
        "{}/../../datasets/reference-samples/{name}.jsonl",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn check(name: &str, mode: TraceMode, text: impl Fn(&TraceRecord) -> String) -> (usize, usize) {
    let (mut solved, mut n) = (0, 0);
    for (i, r) in records(name).iter().enumerate() {
        let p = Problem {
            nums: r.nums.clone(),
            target: r.target,
        };
        let s = score(&p, mode, &text(r));
        assert_eq!(
            s.solved(),
            r.rating > 0.0,
            "{name} record {}: {}",
            i + 1,
            s.reason()
        );
        if s.solved() {
            let written: Vec<String> = s.answer_strings().unwrap();
            assert_eq!(written.len(), r.nums.len() - 1, "{name} record {}", i + 1);
        }
        solved += s.solved() as usize;
        n += 1;
    }
    (solved, n)
}

#[test]
fn apr_reference_samples_score_as_rated() {
    let (solved, n) = check("apr", TraceMode::Apr, |r| {
        r.trace_dict
            .as_ref()
            .and_then(|d| d.main_calls.last().cloned())
            .unwrap()
    });
    assert_eq!((solved, n), (28, 40));
}

#[test]
fn sosp_reference_samples_score_as_rated() {
    let (solved, n) = check("sosp", TraceMode::Sosp, |r| r.search_path.clone());
    assert_eq!((solved, n), (21, 40));
}
