//! The rollout engine's root prompt is a token prefix of the first SFT
//! sequence of the same record, for APR and SoS+ records of the reference
//! samples, with and without budget conditioning: a model is run with the
//! exact prompt it was trained on.

use apr_countdown::Problem;
use apr_rollout::{Mode, RolloutConfig};
use apr_trace::TraceTokenizer;
use apr_train::config::{ConditioningMode, DataConfig};
use apr_train::data::{read_traces, record_budget, sequences};
use apr_train::TraceKind;
use std::path::Path;

#[test]
fn engine_root_prompts_prefix_the_first_sft_sequence() {
    let tok = TraceTokenizer::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/reference-samples");
    for (file, kind, mode) in [
        ("apr.jsonl", TraceKind::Apr, Mode::Apr),
        ("sosp.jsonl", TraceKind::Sosp, Mode::Single),
    ] {
        let records = read_traces(&dir.join(file), None).unwrap();
        assert_eq!(records.len(), 40, "{file}");
        for conditioning in [ConditioningMode::None, ConditioningMode::Budget] {
            let cfg = DataConfig {
                train: vec![],
                kind,
                conditioning,
                val_fraction: 0.0,
                val_max_sequences: 0,
                max_problems: None,
                solved_only: false,
                token_budget_bin: 512,
                loss_on_inserted: false,
                continuation_weight: 1.0,
            };
            for (i, r) in records.iter().enumerate() {
                let first = sequences(r, kind, &cfg, &tok, 1 << 20)
                    .unwrap()
                    .remove(0)
                    .ids;
                // The budget the record's SFT sequence was conditioned on.
                let budget = (conditioning == ConditioningMode::Budget)
                    .then(|| record_budget(r, kind, cfg.token_budget_bin, &tok));
                let rc = RolloutConfig {
                    mode,
                    budget,
                    ..Default::default()
                };
                let problem = Problem {
                    nums: r.nums.clone(),
                    target: r.target,
                };
                let (prefix, text) = rc.root_call(&problem);
                let prompt = tok.call_ids(prefix, &text);
                assert!(
                    first.starts_with(&prompt),
                    "{file} record {i} ({conditioning:?}): engine prompt {text:?} with {prefix:?}"
                );
                // The prompt is followed by what the model generates.
                assert!(first.len() > prompt.len(), "{file} record {i}");
            }
        }
    }
}
