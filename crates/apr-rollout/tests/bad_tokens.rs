//! Model output without text: ids outside the tokenizer, special tokens
//! other than `</s>`, and calls that generate nothing end their thread
//! with a reason and do not count as parsed.

use apr_rollout::mock::ScriptedModel;
use apr_rollout::{FinishReason, Limits, ProblemResult, RolloutConfig};

mod common;

use common::{apr_cfg, run, toy};

/// One problem whose root call is answered with the raw ids `completion`
/// (then `</s>`), by a model with `vocab` logits.
fn one_ids(completion: Vec<u32>, vocab: usize) -> ProblemResult {
    let p = toy();
    let cfg = RolloutConfig {
        limits: Limits {
            max_new_tokens: 20,
            ..Limits::default()
        },
        ..apr_cfg()
    };
    let (cond, prompt) = cfg.root_call(&p);
    let mut m = ScriptedModel::new(2, 4096)
        .with_vocab(vocab)
        .with_ids(cond, &prompt, completion);
    run(&mut m, std::slice::from_ref(&p), cfg).remove(0)
}

/// A model that writes only padding ends its thread at the first pad and
/// does not count as parsed (padding has no text to drop silently).
#[test]
fn special_tokens_other_than_eos_end_the_thread_and_do_not_parse() {
    let r = one_ids(vec![0; 30], 1233);
    let why = "special token <pad>";
    assert_eq!(r.root.finish, FinishReason::BadToken(why.into()));
    assert_eq!(r.root.calls[0].generated_ids, [0]);
    assert_eq!(r.root.calls[0].logprobs.len(), 1);
    assert!(!r.parses);
    assert_eq!(
        r.parse_error.as_deref(),
        Some("thread 0 call 0: bad token: special token <pad>")
    );
    assert_eq!(r.finish_reasons.get("bad_token"), Some(&1));
    assert_eq!(apr_rollout::Summary::of(&[r]).parse_rate, 0.0);

    // Some text, then `<s>` (id 1) or `<unk>` (id 3).
    let tok = apr_trace::TraceTokenizer::new();
    let line = tok.encode("Exploring Operation: 39-5=34, Resulting Numbers: [9, 87, 34]\n");
    for (id, name) in [(1, "<s>"), (3, "<unk>")] {
        let mut ids = line.clone();
        ids.push(id);
        let r = one_ids(ids, 1233);
        let why = format!("special token {name}");
        assert_eq!(r.root.finish, FinishReason::BadToken(why.clone()));
        assert_eq!(r.root.calls[0].generated_ids.len(), line.len() + 1);
        assert!(r.root.calls[0].text.ends_with("[9, 87, 34]\n"));
        assert!(!r.parses);
        assert_eq!(
            r.parse_error,
            Some(format!("thread 0 call 0: bad token: {why}"))
        );
    }
    // The same line and `</s>` parses: the line itself is fine.
    let r = one_ids(line, 1233);
    assert_eq!(r.root.finish, FinishReason::Eos);
    assert!(r.parses, "{:?}", r.parse_error);
}

/// A model whose embedding is padded past the tokenizer's 1233 ids.
#[test]
fn ids_outside_the_tokenizer_end_the_thread_and_do_not_parse() {
    assert_eq!(apr_trace::TraceTokenizer::new().vocab_size(), 1233);
    let tok = apr_trace::TraceTokenizer::new();
    let mut ids = tok.encode("Exploring Operation: 39-5=34, Resulting Numbers: [9, 87, 34]\n");
    let n = ids.len();
    ids.extend([1300, 7]);
    let r = one_ids(ids, 1400);
    let why = "id 1300 outside the tokenizer's 1233 ids";
    assert_eq!(r.root.finish, FinishReason::BadToken(why.into()));
    let gen = &r.root.calls[0].generated_ids;
    assert_eq!((gen.len(), gen[n]), (n + 1, 1300));
    assert!(!r.parses);
    assert_eq!(
        r.parse_error,
        Some(format!("thread 0 call 0: bad token: {why}"))
    );
    // The last in-vocabulary id is fine.
    let r = one_ids(vec![1232], 1400);
    assert_ne!(r.root.finish.name(), "bad_token");
}

/// A call that generates nothing but `</s>` does not count as parsed, even
/// though its text (the prompt) parses.
#[test]
fn a_call_that_generates_no_text_does_not_parse() {
    let r = one_ids(Vec::new(), 1233);
    assert_eq!(r.root.finish, FinishReason::Eos);
    assert_eq!(
        r.root.calls[0].generated_ids,
        [apr_trace::tokenizer::EOS_ID]
    );
    assert!(apr_trace::parse_trace(&r.root.calls[0].text).is_ok());
    assert!(!r.parses);
    assert_eq!(
        r.parse_error.as_deref(),
        Some("thread 0 call 0: the model generated no text")
    );
}

#[test]
fn finish_reasons_serialize_as_before_and_bad_tokens_as_bad_token() {
    let cases = [
        (FinishReason::Eos, r#""eos""#),
        (FinishReason::MaxNewTokens, r#""max_new_tokens""#),
        (FinishReason::WroteJoin, r#""wrote_join""#),
        (FinishReason::Protocol("x".into()), r#"{"protocol":"x"}"#),
        (
            FinishReason::SpawnLimit("y".into()),
            r#"{"spawn_limit":"y"}"#,
        ),
        (
            FinishReason::BadToken("special token <pad>".into()),
            r#"{"bad_token":"special token <pad>"}"#,
        ),
    ];
    for (f, json) in cases {
        assert_eq!(serde_json::to_string(&f).unwrap(), json);
        assert_eq!(serde_json::from_str::<FinishReason>(json).unwrap(), f);
    }
    assert_eq!(FinishReason::BadToken(String::new()).name(), "bad_token");
}
