//! Property tests of the trace language.
//!
//! Arbitrary typed lines of every [`Line`] variant (small numbers and full
//! `u64` ones, node ids of 1 to 6 components, operation lists of 0 to 4
//! entries, number lists of 0 to 6 entries) and whole [`Trace`]s with an
//! optional [`Conditioning`] prefix must:
//!
//! - render and parse back to the same value;
//! - have the token count that [`TraceTokenizer::count_line`] /
//!   [`TraceTokenizer::count_trace`] compute without rendering equal to the
//!   lexer's count of the rendered text;
//! - decode back to their text after encoding, and encode to the same ids as
//!   the Hugging Face tokenizer built by [`TraceTokenizer::to_hf`].
//!
//! Arbitrary strings (any Unicode, grammar fragments glued together, and
//! mutated rendered traces) must never make the parser, the protocol
//! functions or solution extraction panic, and parse errors must point at a
//! real line of the input. Well-formed spawn blocks give the expected child
//! prompts and a continuation that parses, and the typed and text token
//! accounting agree on generated thread trees.

use apr_trace::accounting::shared_line_prefix;
use apr_trace::{
    continuation_for, dict_stats, extract_solution_text, join_message, parse_line, parse_spawn,
    parse_trace, parse_trace_bytes, tree_stats, Conditioning, Line, NodeId, NumList, Op, OpKind,
    OpList, ParseErrorKind, ThreadTree, Trace, TraceTokenizer,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use std::collections::HashSet;
use std::sync::OnceLock;

#[path = "roundtrip_prop/strategies.rs"]
mod strategies;

use strategies::*;

// ------------------------------------------------------------------ helpers

fn tok() -> &'static TraceTokenizer {
    static TOK: OnceLock<TraceTokenizer> = OnceLock::new();
    TOK.get_or_init(TraceTokenizer::new)
}

/// The Hugging Face tokenizer, built once for the whole test binary.
fn hf() -> &'static tokenizers::Tokenizer {
    static HF: OnceLock<tokenizers::Tokenizer> = OnceLock::new();
    HF.get_or_init(|| tok().to_hf().expect("building the Hugging Face tokenizer"))
}

/// Checks that a parse error points at a real line of `text` and, for a
/// malformed line, at a column inside it; and that its message names it.
fn check_parse_error(text: &str, e: &apr_trace::ParseError) -> Result<(), TestCaseError> {
    let msg = e.to_string();
    match &e.kind {
        ParseErrorKind::EmptyInput => {
            prop_assert!(text.is_empty());
            prop_assert_eq!(e.line, 0);
        }
        ParseErrorKind::NotUtf8 { .. } => prop_assert!(false, "NotUtf8 from a &str"),
        kind => {
            // Lines as the parser counts them: '\n'-separated pieces.
            let physical: Vec<&str> = text.split('\n').collect();
            prop_assert!(
                e.line >= 1 && e.line <= physical.len(),
                "line {} of {} pieces",
                e.line,
                physical.len()
            );
            let here = physical[e.line - 1];
            // The excerpt is a piece of that line (the prefix is split off
            // line 1 before its body is parsed).
            prop_assert!(
                here.contains(e.text.as_str()),
                "{:?} not in {:?}",
                e.text,
                here
            );
            prop_assert!(e.text.chars().count() <= 120);
            prop_assert!(
                msg.contains(&format!("line {}", e.line)),
                "message {:?} does not name line {}",
                msg,
                e.line
            );
            match kind {
                ParseErrorKind::MissingFinalNewline => {
                    prop_assert_eq!(e.line, physical.len());
                    prop_assert!(!text.ends_with('\n'));
                }
                ParseErrorKind::Malformed { column, .. } => {
                    prop_assert!(*column <= here.len(), "column {} of {:?}", column, here);
                    let want = format!("column {column}");
                    prop_assert!(msg.contains(&want), "{:?} lacks {:?}", msg, want);
                }
                _ => {}
            }
        }
    }
    Ok(())
}

// -------------------------------------------------------------- properties

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn trace_roundtrips(t in trace()) {
        let text = t.render();
        prop_assert_eq!(parse_trace(&text), Ok(t.clone()));
        prop_assert_eq!(parse_trace_bytes(text.as_bytes()), Ok(t));
    }

    #[test]
    fn line_roundtrips_and_counts(l in line()) {
        let text = l.to_string();
        prop_assert!(!text.contains('\n'));
        prop_assert_eq!(parse_line(&text), Ok(l.clone()));
        let with_nl = format!("{text}\n");
        prop_assert_eq!(TraceTokenizer::count_line(&l), tok().count(&with_nl), "{:?}", with_nl);
        prop_assert_eq!(tok().encode(&with_nl).len(), tok().count(&with_nl));
    }

    #[test]
    fn trace_counts_match_lexer(t in trace()) {
        let text = t.render();
        for l in &t.lines {
            let mut s = l.to_string();
            s.push('\n');
            prop_assert_eq!(TraceTokenizer::count_line(l), tok().count(&s), "{:?}", s);
        }
        if let Some(c) = t.prefix {
            let body_len: usize = t.lines.iter().map(TraceTokenizer::count_line).sum();
            prop_assert_eq!(
                TraceTokenizer::count_conditioning(c) + body_len,
                tok().count(&text)
            );
        }
        prop_assert_eq!(TraceTokenizer::count_trace(&t), tok().count(&text));
    }

    #[test]
    fn encode_decode_roundtrips(t in trace()) {
        let text = t.render();
        let ids = tok().encode(&text);
        prop_assert_eq!(ids.len(), tok().count(&text));
        prop_assert!(ids.iter().all(|&i| i > apr_trace::tokenizer::UNK_ID
            && (i as usize) < tok().vocab_size()));
        prop_assert_eq!(tok().decode(&ids), text);
    }

    #[test]
    fn arbitrary_text_never_panics(
        s in any_text(),
        kids in prop::collection::vec(any_text(), 0..3),
    ) {
        match parse_trace(&s) {
            Ok(t) => prop_assert_eq!(t.render(), s.as_str()),
            Err(e) => check_parse_error(&s, &e)?,
        }
        let _ = parse_spawn(&s).map_err(|e| e.to_string());
        if let Some(m) = join_message(&s) {
            prop_assert!(s.ends_with(m));
            prop_assert!(s[..s.len() - m.len()].ends_with('\n'));
            prop_assert!(m.ends_with(" equal: Goal Reached\n"));
        }
        let kid_refs: Vec<&str> = kids.iter().map(String::as_str).collect();
        let _ = continuation_for(&s, &kid_refs).map_err(|e| e.to_string());
        let _ = extract_solution_text(&s).map_err(|e| e.to_string());
        let ids = tok().encode(&s);
        prop_assert_eq!(tok().count(&s), ids.len());
        prop_assert!(ids.iter().all(|&i| (i as usize) < tok().vocab_size()));
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..200)) {
        match (parse_trace_bytes(&b), std::str::from_utf8(&b)) {
            (Ok(t), Ok(s)) => prop_assert_eq!(t.render(), s),
            (Err(e), Ok(s)) => check_parse_error(s, &e)?,
            (Err(e), Err(u)) => prop_assert_eq!(
                e.kind,
                ParseErrorKind::NotUtf8 { valid_up_to: u.valid_up_to() }
            ),
            (Ok(_), Err(_)) => prop_assert!(false, "parsed invalid UTF-8"),
        }
    }

    #[test]
    fn spawn_block_gives_child_prompts_and_continuation(
        (parent, expected) in spawning_parent(),
        kid_traces in prop::collection::vec(trace(), 4),
    ) {
        let text = parent.render();
        let block = parse_spawn(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(block.children.len(), expected.len());
        for (i, (c, (id, target, nums, ops))) in block.children.iter().zip(&expected).enumerate() {
            prop_assert_eq!(c.index as usize, i);
            prop_assert_eq!(&c.id, id);
            prop_assert_eq!(c.target, *target);
            prop_assert_eq!(&c.nums, nums);
            prop_assert_eq!(&c.ops, ops);
            let prompt = parse_trace(&c.render()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(prompt.lines, c.lines().to_vec());
        }
        let pre = block.pre_spawn(&text);
        let open = parent.spawn_block_start().unwrap();
        prop_assert_eq!(pre, Trace::from_lines(parent.lines[..open].to_vec()).render());
        // Children's texts as a model would write them (no conditioning).
        let kids: Vec<String> = kid_traces
            .iter()
            .take(expected.len())
            .map(|t| Trace::from_lines(t.lines.clone()).render())
            .collect();
        let kid_refs: Vec<&str> = kids.iter().map(String::as_str).collect();
        let cont = continuation_for(&text, &kid_refs).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(cont.starts_with(pre));
        prop_assert!(cont.ends_with("<End Sub Searches>\n"));
        let parsed = parse_trace(&cont).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let joins = parsed.lines[open..]
            .iter()
            .filter(|l| matches!(l, Line::JoinGoal { .. } | Line::JoinNoSolution { .. }))
            .count();
        prop_assert!(joins >= expected.len());
        for (i, k) in kids.iter().enumerate() {
            let has_msg = join_message(k).is_some();
            let want = if has_msg {
                Line::JoinGoal { index: i as u32, level: 1, id: expected[i].0.clone() }
            } else {
                Line::JoinNoSolution { index: i as u32, level: 1, id: expected[i].0.clone() }
            };
            prop_assert!(parsed.lines[open..].contains(&want), "{:?} missing", want);
        }
    }

    #[test]
    fn typed_and_text_token_stats_agree(tree in thread_tree(3)) {
        let dict = tree.to_dict();
        prop_assert_eq!(ThreadTree::from_dict(&dict), Ok(tree.clone()));
        let typed = tree_stats(&tree);
        let text = dict_stats(&dict, &|t| tok().count(t));
        prop_assert_eq!(typed, text);
        prop_assert_eq!(typed.calls, dict.all_calls().len());
        prop_assert_eq!(typed.child_threads, tree.descendant_count());
        let longest = dict.all_calls().iter().map(|c| tok().count(c) + 2).max().unwrap_or(0);
        prop_assert_eq!(typed.longest_call, longest);
        prop_assert!(typed.sequential <= typed.total);
    }

    #[test]
    fn shared_line_prefix_is_the_longest_common_line_prefix(
        a in "[ab\n]{0,12}",
        b in "[ab\n]{0,12}",
    ) {
        let p = shared_line_prefix(&a, &b);
        prop_assert!(a.starts_with(p) && b.starts_with(p));
        prop_assert!(p.is_empty() || p.ends_with('\n'));
        // No longer common prefix ends at a line end.
        for (i, _) in a.match_indices('\n') {
            if i >= p.len() {
                prop_assert!(!b.starts_with(&a[..=i]), "{:?} is longer", &a[..=i]);
            }
        }
    }
}

proptest! {
    // Building encodings with the Hugging Face tokenizer is slow in debug
    // builds of this crate: a handful of cases is enough to catch a
    // divergence in the vocabulary or the split regex.
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn hf_tokenizer_agrees_with_native(t in trace()) {
        let text = t.render();
        let enc = hf().encode(text.as_str(), false).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let native = tok().encode(&text);
        prop_assert_eq!(enc.get_ids(), native.as_slice());
        let back = hf().decode(enc.get_ids(), true).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, text);
    }
}

// ------------------------------------------------------- deterministic checks

#[test]
fn line_strategy_covers_every_variant() {
    let mut runner = TestRunner::deterministic();
    let strategy = line();
    let mut seen = HashSet::new();
    for _ in 0..2000 {
        let l = strategy.new_tree(&mut runner).unwrap().current();
        seen.insert(variant_index(&l));
    }
    assert_eq!(seen.len(), VARIANTS, "variants seen: {seen:?}");
}

#[test]
fn empty_trace_renders_to_rejected_empty_input() {
    let t = Trace::default();
    assert_eq!(t.render(), "");
    assert_eq!(
        parse_trace("").unwrap_err().kind,
        ParseErrorKind::EmptyInput
    );
    // With a prefix and no line the call text is not empty and roundtrips.
    let t = Trace {
        prefix: Some(Conditioning::TokenBudget(512)),
        lines: vec![],
    };
    assert_eq!(t.render(), "Token Budget: 512 ");
    assert_eq!(parse_trace(&t.render()), Ok(t));
}

#[test]
fn extreme_values_roundtrip_and_count() {
    let big = NodeId(vec![u32::MAX; 6].into_iter().collect());
    let op = Op {
        lhs: u64::MAX,
        kind: OpKind::Div,
        rhs: 0,
        result: u64::MAX,
    };
    let t = Trace {
        prefix: Some(Conditioning::SubCallBudget(u32::MAX)),
        lines: vec![
            Line::CurrentState {
                target: u64::MAX,
                nums: NumList::from_vec(vec![u64::MAX; 6]),
                ops: OpList::from_vec(vec![op; 4]),
            },
            Line::Generated {
                id: big.clone(),
                target: 0,
                nums: NumList::new(),
                op,
            },
            Line::PathNode {
                index: u32::MAX,
                nums: NumList::new(),
                op,
            },
            Line::SpawnChild {
                index: u32::MAX,
                level: u32::MAX,
                id: big,
            },
        ],
    };
    let text = t.render();
    assert_eq!(parse_trace(&text), Ok(t.clone()));
    assert_eq!(TraceTokenizer::count_trace(&t), tok().count(&text));
    assert_eq!(tok().decode(&tok().encode(&text)), text);
}

/// Regression: two calls that differ inside a multi-byte character
/// (`é` = C3 A9, `è` = C3 A8) once made `shared_line_prefix` slice inside a
/// character and panic.
#[test]
fn shared_line_prefix_on_non_ascii_does_not_panic() {
    assert_eq!(shared_line_prefix("a\né\n", "a\nè\n"), "a\n");
    let dict = apr_trace::TraceDict {
        main_calls: vec![
            "Moving to Node #0\né\n".to_string(),
            "Moving to Node #0\nè\n".to_string(),
        ],
        sub_calls: vec![],
    };
    let s = dict_stats(&dict, &|t| tok().count(t));
    assert_eq!(s.calls, 2);
}
