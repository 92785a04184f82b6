//! Golden files: the reference code's own traces (datasets/reference-samples)
//! must parse, render back byte for byte, and obey the spawn/join protocol.

use apr_trace::{
    continuation_for, dict_stats, extract_solution, parse_trace, tree_stats, ThreadTree, TraceDict,
    TraceTokenizer,
};
use serde_json::Value;
use std::path::PathBuf;

fn samples(name: &str) -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../datasets/reference-samples")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn roundtrip(text: &str) {
    let t = parse_trace(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.render(), text);
}

#[test]
fn every_reference_string_roundtrips() {
    let mut n = 0;
    for file in ["problems.jsonl", "sosp.jsonl", "apr.jsonl"] {
        for r in samples(file) {
            roundtrip(r["optimal_path"].as_str().unwrap());
            n += 1;
            if let Some(p) = r.get("search_path") {
                roundtrip(p.as_str().unwrap());
                n += 1;
            }
            if let Some(d) = r.get("trace_dict") {
                let dict: TraceDict = serde_json::from_value(d.clone()).unwrap();
                let tree = ThreadTree::from_dict(&dict).unwrap();
                assert_eq!(tree.to_dict(), dict);
                n += dict.all_calls().len();
            }
        }
    }
    assert!(n > 400, "only {n} strings checked");
}

#[test]
fn protocol_rebuilds_reference_continuations() {
    let mut rounds = 0;
    for r in samples("apr.jsonl") {
        let dict: TraceDict = serde_json::from_value(r["trace_dict"].clone()).unwrap();
        for (i, kids) in dict.sub_calls.iter().enumerate() {
            let parent = &dict.main_calls[i];
            let texts: Vec<&str> = kids
                .iter()
                .map(|k| k.main_calls.last().unwrap().as_str())
                .collect();
            // Each child's first two lines are the prompt the protocol gives it.
            let block = apr_trace::parse_spawn(parent).unwrap();
            for (c, t) in block.children.iter().zip(&texts) {
                assert!(t.starts_with(&c.render()), "{t}");
            }
            let cont = continuation_for(parent, &texts).unwrap();
            assert!(dict.main_calls[i + 1].starts_with(&cont));
            rounds += 1;
        }
        apr_trace::check_protocol(&dict).unwrap();
        if let Some(kids) = dict.sub_calls.first().filter(|k| k.len() > 1) {
            // Children in the wrong order break the protocol.
            let mut swapped = dict.clone();
            swapped.sub_calls[0] = kids.iter().rev().cloned().collect();
            assert!(matches!(
                apr_trace::check_protocol(&swapped),
                Err(apr_trace::Error::TreeProtocol { round: 0, .. })
            ));
        }
    }
    assert!(rounds >= 30);
}

#[test]
fn solved_samples_have_a_solution_and_token_stats_agree() {
    let tok = TraceTokenizer::new();
    for r in samples("apr.jsonl") {
        let dict: TraceDict = serde_json::from_value(r["trace_dict"].clone()).unwrap();
        let tree = ThreadTree::from_dict(&dict).unwrap();
        let solved = r["rating"].as_f64().unwrap() > 0.0;
        let sol = extract_solution(tree.final_call().unwrap());
        assert_eq!(sol.is_ok(), solved);
        let s = tree_stats(&tree);
        assert_eq!(s, dict_stats(&dict, &|t| tok.count(t)));
        assert!(s.sequential <= s.total);
        assert_eq!(s.child_threads, tree.descendant_count());
    }
}

#[test]
fn committed_tokenizer_json_is_current_and_loads() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets/tokenizer/tokenizer.json");
    let committed = std::fs::read_to_string(&path).unwrap();
    let tok = TraceTokenizer::new();
    assert_eq!(
        committed,
        tok.to_hf_json().unwrap(),
        "regenerate with `gen-data tokenizer`"
    );
    let hf = apr_trace::tokenizer::load_hf(&path).unwrap();
    for r in samples("apr.jsonl").iter().take(5) {
        let text = r["search_path"].as_str().unwrap();
        assert_eq!(
            hf.encode(text, false).unwrap().get_ids(),
            tok.encode(text).as_slice()
        );
    }
}
