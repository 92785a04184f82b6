//! The engine on a real (random-weight) `tiny` model: batched decoding
//! gives exactly the tokens of one-thread-at-a-time decoding, and sampled
//! rollouts do not depend on the batch, on the host decoder and on the
//! GPU path's device-tensor cache.

use apr_countdown::{Problem, ProblemSpec};
use apr_model::{Cpu, KvKind, Llama, ModelConfig};
use apr_rollout::{
    Engine, Limits, LlamaStepper, ProblemResult, RolloutConfig, SamplingParams, StepperKind,
};
use std::collections::HashSet;

fn problems(n: u64) -> Vec<Problem> {
    let none = HashSet::new();
    (0..n)
        .map(|i| ProblemSpec::default().problem(11, i, &none).unwrap())
        .collect()
}

fn rollout(slots: usize, cfg: &RolloutConfig, ps: &[Problem]) -> Vec<ProblemResult> {
    rollout_on(slots, cfg, ps, false)
}

/// With `device_cache`, steps go through burn's ops with the cache kept as
/// tensors (the GPU path); otherwise through the host decoder.
fn rollout_on(
    slots: usize,
    cfg: &RolloutConfig,
    ps: &[Problem],
    device_cache: bool,
) -> Vec<ProblemResult> {
    let cfg_m = ModelConfig::preset("tiny").unwrap();
    let model = Llama::<Cpu>::init(&cfg_m, 5, &Default::default());
    let kind = if device_cache {
        StepperKind::Burn(KvKind::Device)
    } else {
        StepperKind::default_for::<Cpu>()
    };
    let mut stepper = LlamaStepper::with_kind(model, slots, 256, kind).unwrap();
    if device_cache {
        assert!(!stepper.host_decode());
    }
    Engine::new(&mut stepper, cfg.clone())
        .unwrap()
        .run(ps, |_| {})
        .unwrap()
}

fn cfg(sampling: SamplingParams) -> RolloutConfig {
    RolloutConfig {
        sampling,
        seed: 3,
        limits: Limits {
            max_new_tokens: 24,
            ..Limits::default()
        },
        ..RolloutConfig::default()
    }
}

#[test]
fn batched_greedy_decoding_equals_one_thread_at_a_time() {
    let ps = problems(5);
    let c = cfg(SamplingParams::greedy());
    let alone = rollout(1, &c, &ps);
    let batched = rollout(5, &c, &ps);
    for (a, b) in alone.iter().zip(&batched) {
        let (ca, cb) = (&a.root.calls[0], &b.root.calls[0]);
        assert_eq!(ca.generated_ids, cb.generated_ids, "problem {}", a.problem);
        for (x, y) in ca.logprobs.iter().zip(&cb.logprobs) {
            assert!((x - y).abs() < 1e-4, "{x} vs {y}");
        }
    }
    // (Random weights: greedy repeats one token, so the log-probabilities,
    // which differ per position and problem, carry the comparison; the
    // sampled test below compares varied tokens exactly.)
    assert_ne!(
        alone[0].root.calls[0].logprobs,
        alone[1].root.calls[0].logprobs
    );
}

#[test]
fn sampled_rollouts_do_not_depend_on_the_batch() {
    let ps = problems(3);
    let c = RolloutConfig {
        samples: 2,
        ..cfg(SamplingParams::temperature(1.0))
    };
    let a = rollout(2, &c, &ps);
    let b = rollout(6, &c, &ps);
    assert_eq!(a.len(), 6);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.root.calls[0].generated_ids, y.root.calls[0].generated_ids);
    }
    // Two samples of one problem differ.
    assert_ne!(
        a[0].root.calls[0].generated_ids,
        a[1].root.calls[0].generated_ids
    );
}

/// The GPU path's cache (burn ops, keys and values kept as tensors) samples
/// the same tokens as the host decoder, in batches.
#[test]
fn the_device_cache_path_samples_the_host_decoders_tokens() {
    let ps = problems(3);
    let c = RolloutConfig {
        samples: 2,
        ..cfg(SamplingParams::temperature(1.0))
    };
    let host = rollout_on(4, &c, &ps, false);
    let device = rollout_on(4, &c, &ps, true);
    for (x, y) in host.iter().zip(&device) {
        let (cx, cy) = (&x.root.calls[0], &y.root.calls[0]);
        assert_eq!(cx.generated_ids, cy.generated_ids);
        for (a, b) in cx.logprobs.iter().zip(&cy.logprobs) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }
}

/// A fresh directory under the system's temporary one.
fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("apr-rollout-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// `load_checked` with the trace tokenizer the trainers save: the same
/// tokenizer passes; one of another vocabulary, or a model with fewer
/// embedding rows than its 1233 ids, does not.
#[test]
fn load_checked_accepts_the_trace_tokenizer_and_rejects_others() {
    use apr_model::checkpoint;
    let tok = apr_trace::TraceTokenizer::new().to_hf_json().unwrap();
    let root = scratch("load-checked");
    let dir = root.join("model");
    let tiny = ModelConfig::preset("tiny").unwrap();
    assert_eq!(tiny.vocab_size, 1233);
    let m = Llama::<Cpu>::init(&tiny, 5, &Default::default());
    checkpoint::save(&m, &dir, Some(&tok)).unwrap();
    checkpoint::load_checked::<Cpu>(&dir, &Default::default(), &tok).unwrap();

    // Id 40 is the digit string "3" (4 specials, 33 phrases, then "0" at 37).
    assert_eq!(apr_trace::TraceTokenizer::new().token(40), Some("3"));
    let other = tok.replacen(r#""3": 40"#, r#""x3": 40"#, 1);
    assert_ne!(other, tok);
    let e = checkpoint::load_checked::<Cpu>(&dir, &Default::default(), &other)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(r#"at token "3" (id 40), where "x3" (id 40) is expected"#),
        "{e}"
    );

    let small = ModelConfig {
        vocab_size: 1232,
        ..tiny
    };
    let m = Llama::<Cpu>::init(&small, 5, &Default::default());
    checkpoint::save(&m, &dir, Some(&tok)).unwrap();
    let e = checkpoint::load_checked::<Cpu>(&dir, &Default::default(), &tok)
        .unwrap_err()
        .to_string();
    assert!(e.contains("vocab_size 1232 is below the 1233 ids"), "{e}");
    std::fs::remove_dir_all(&root).unwrap();
}
