//! The lines of a run's `metrics.jsonl`, one type per trainer: one line
//! per step, with the validation figures only on the steps that validate.
//! [`crate::state::Metrics`] writes them and reads them back by key (plots,
//! summaries, older files).

use apr_rollout::Summary;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One line of an SFT run's `metrics.jsonl`: one per optimiser step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SftRow {
    /// The step (1-based).
    pub step: usize,
    /// Training loss: nats per target token of the step's batch.
    pub loss: f64,
    /// Learning rate of the step.
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Target tokens trained on so far.
    pub tokens: u64,
    /// Target tokens per second of this process.
    pub tokens_per_s: f64,
    /// Seconds of training so far.
    pub seconds: f64,
    /// Epoch of the step's data.
    pub epoch: u64,
    /// Validation loss, on the steps that validate (`eval_every`, the
    /// last) when the corpus has a validation split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f64>,
}

/// Greedy validation of the policy, as its metrics show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GrpoVal {
    /// Share of problems solved.
    pub val_accuracy: f64,
    /// Share of samples whose every call parses.
    pub val_parse_rate: f64,
    /// Mean total tokens.
    pub val_total_tokens: f64,
    /// Mean child threads.
    pub val_child_threads: f64,
}

impl GrpoVal {
    /// The validation figures of a greedy run's summary.
    pub fn of(s: &Summary) -> GrpoVal {
        GrpoVal {
            val_accuracy: s.accuracy,
            val_parse_rate: s.parse_rate,
            val_total_tokens: s.mean_total_tokens,
            val_child_threads: s.mean_child_threads,
        }
    }
}

/// The metrics line of the initial policy's validation (step 0).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GrpoValRow {
    /// 0.
    pub step: usize,
    /// The validation.
    #[serde(flatten)]
    pub val: GrpoVal,
}

/// One line of a GRPO run's `metrics.jsonl`: one per GRPO step (a rollout
/// batch and its `inner_steps` updates).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GrpoRow {
    /// The step (1-based).
    pub step: usize,
    /// Mean reward of the batch's samples.
    pub reward: f64,
    /// Share of samples solved.
    pub accuracy: f64,
    /// Share of samples whose every call parses.
    pub parse_rate: f64,
    /// Groups whose advantages are all zero.
    pub zero_advantage_groups: usize,
    /// Groups (problems) of the batch.
    pub groups: usize,
    /// Training sequences (calls that generated a token).
    pub sequences: usize,
    /// Mean tokens per training sequence.
    pub tokens_per_sequence: f64,
    /// Mean total tokens per sample.
    pub total_tokens: f64,
    /// Mean sequential tokens per sample.
    pub sequential_tokens: f64,
    /// Mean child threads per sample.
    pub child_threads: f64,
    /// Threads by finish reason: a spawn limit or a written join block
    /// that ended threads shows here.
    pub finish_reasons: BTreeMap<String, usize>,
    /// Loss of the first update.
    pub loss: f64,
    /// k3 KL to the reference at the first update.
    pub kl: f64,
    /// Clip fraction of the last update.
    pub clip_fraction: f64,
    /// Mean policy ratio of the last update.
    pub ratio: f64,
    /// Clip fraction of the first update (0 when the trainer's forward
    /// agrees with the engine's log-probabilities).
    pub clip_fraction_first: f64,
    /// Mean policy ratio of the first update (1, likewise).
    pub ratio_first: f64,
    /// Gradient norm of the first update, before clipping.
    pub grad_norm: f64,
    /// Learning rate of the step.
    pub lr: f64,
    /// Seconds of the rollout.
    pub rollout_s: f64,
    /// Seconds of the updates.
    pub update_s: f64,
    /// Seconds of loading the updated weights into the rollout servers (0
    /// natively).
    #[serde(default)]
    pub sync_s: f64,
    /// Seconds of training so far.
    pub seconds: f64,
    /// Greedy validation, on the steps that validate (`val_every`, the
    /// last) when the run has validation problems.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub val: Option<GrpoVal>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys<T: Serialize>(row: &T) -> Vec<String> {
        let v = serde_json::to_value(row).unwrap();
        v.as_object().unwrap().keys().cloned().collect()
    }

    fn sorted(k: &[&str]) -> Vec<String> {
        let mut k: Vec<String> = k.iter().map(|s| s.to_string()).collect();
        k.sort();
        k
    }

    #[test]
    fn grpo_lines_keep_their_keys() {
        let val = GrpoVal::of(&Summary::default());
        let val_keys = [
            "val_accuracy",
            "val_parse_rate",
            "val_total_tokens",
            "val_child_threads",
        ];
        let row = GrpoValRow {
            step: 0,
            val: val.clone(),
        };
        let mut want = vec!["step"];
        want.extend(val_keys);
        assert_eq!(keys(&row), sorted(&want));
        let mut row = GrpoRow {
            step: 1,
            reward: 0.5,
            accuracy: 0.0,
            parse_rate: 0.0,
            zero_advantage_groups: 0,
            groups: 0,
            sequences: 0,
            tokens_per_sequence: 0.0,
            total_tokens: 0.0,
            sequential_tokens: 0.0,
            child_threads: 0.0,
            finish_reasons: BTreeMap::new(),
            loss: 0.0,
            kl: 0.0,
            clip_fraction: 0.0,
            ratio: 0.0,
            clip_fraction_first: 0.0,
            ratio_first: 0.0,
            grad_norm: 0.0,
            lr: 0.0,
            rollout_s: 0.0,
            update_s: 0.0,
            sync_s: 0.0,
            seconds: 0.0,
            val: None,
        };
        let mut want = vec![
            "step",
            "reward",
            "accuracy",
            "parse_rate",
            "zero_advantage_groups",
            "groups",
            "sequences",
            "tokens_per_sequence",
            "total_tokens",
            "sequential_tokens",
            "child_threads",
            "finish_reasons",
            "loss",
            "kl",
            "clip_fraction",
            "ratio",
            "clip_fraction_first",
            "ratio_first",
            "grad_norm",
            "lr",
            "rollout_s",
            "update_s",
            "sync_s",
            "seconds",
        ];
        assert_eq!(keys(&row), sorted(&want));
        row.val = Some(val);
        want.extend(val_keys);
        assert_eq!(keys(&row), sorted(&want));
        // Lines read back, with and without validation.
        let back: GrpoRow = serde_json::from_value(serde_json::to_value(&row).unwrap()).unwrap();
        assert_eq!(back, row);
        row.val = None;
        let back: GrpoRow = serde_json::from_value(serde_json::to_value(&row).unwrap()).unwrap();
        assert_eq!(back, row);
    }

    #[test]
    fn sft_lines_keep_their_keys() {
        let mut row = SftRow {
            step: 3,
            loss: 2.5,
            lr: 1e-3,
            grad_norm: 0.5,
            tokens: 100,
            tokens_per_s: 10.0,
            seconds: 1.5,
            epoch: 0,
            val_loss: None,
        };
        let text = serde_json::to_value(&row).unwrap().to_string();
        let want = serde_json::json!({
            "step": 3, "loss": 2.5, "lr": 1e-3, "grad_norm": 0.5,
            "tokens": 100, "tokens_per_s": 10.0, "seconds": 1.5, "epoch": 0,
        });
        assert_eq!(text, want.to_string());
        row.val_loss = Some(2.75);
        let mut want = want;
        want["val_loss"] = serde_json::json!(2.75);
        assert_eq!(serde_json::to_value(&row).unwrap(), want);
    }
}
