//! GRPO end to end on a toy task with a small random model: the reward
//! rises; the first inner step's policy ratio is 1; a run stopped and
//! resumed reproduces the uninterrupted metrics; the KL to the reference
//! starts at zero.

use apr_countdown::{ProblemRecord, ProblemSpec};
use apr_model::{checkpoint, Llama, ModelConfig};
use apr_rollout::ProblemResult;
use apr_train::{GrpoConfig, RunOptions};
use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

type B = apr_model::CpuTrain;

fn setup(dir: &Path) {
    let spec = ProblemSpec::default();
    let mut f = std::fs::File::create(dir.join("p.jsonl")).unwrap();
    for i in 0..6 {
        let p = spec.problem(5, i, &HashSet::new()).unwrap();
        let r = ProblemRecord::new(&p).unwrap();
        writeln!(f, "{}", serde_json::to_string(&r).unwrap()).unwrap();
    }
    let mut c = ModelConfig::preset("tiny").unwrap();
    c.hidden_size = 32;
    c.intermediate_size = 64;
    c.num_layers = 2;
    c.num_heads = 2;
    c.num_kv_heads = 1;
    c.max_seq_len = 96;
    let m: Llama<apr_model::Cpu> = Llama::init(&c, 7, &Default::default());
    let tok = apr_trace::TraceTokenizer::new().to_hf_json().unwrap();
    checkpoint::save(&m, &dir.join("init"), Some(&tok)).unwrap();
}

fn config(dir: &Path, steps: usize, lr: f64, kl: f64) -> GrpoConfig {
    config_sampling(dir, steps, lr, kl, "temperature = 1.0")
}

fn config_sampling(dir: &Path, steps: usize, lr: f64, kl: f64, sampling: &str) -> GrpoConfig {
    GrpoConfig::from_toml(&format!(
        r#"
out = "{out}"
init = "{init}"
problems = "{p}"
slots = 16
[rollout]
mode = "single"
[rollout.sampling]
{sampling}
[rollout.limits]
max_new_tokens = 4
[optim]
seed = 3
lr = {lr}
steps = {steps}
batch_problems = 3
group_size = 6
inner_steps = 2
kl_coef = {kl}
val_every = 0
checkpoint_every = 1
"#,
        out = dir.join("run").display(),
        init = dir.join("init").display(),
        p = dir.join("p.jsonl").display(),
    ))
    .unwrap()
}

/// The toy reward: the share of the 4 token slots filled with a "low" id.
fn low_ids(r: &ProblemResult) -> f64 {
    let g = &r.root.calls[0].generated_ids;
    g.iter().filter(|&&t| t < 600).count() as f64 / 4.0
}

fn metrics(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("run/metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn grpo_raises_a_toy_reward() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let cfg = config(dir.path(), 12, 2e-2, 0.0);
    let s = apr_train::train_grpo_with::<B>(
        &cfg,
        &Default::default(),
        &RunOptions::default(),
        &low_ids,
    )
    .unwrap();
    let rows = metrics(dir.path());
    let r: Vec<f64> = rows.iter().map(|m| m["reward"].as_f64().unwrap()).collect();
    // The first inner step sees the policy that sampled: the engine's
    // stored log-probabilities agree with the trainer's forward.
    for m in &rows {
        let ratio = m["ratio_first"].as_f64().unwrap();
        assert!((ratio - 1.0).abs() < 1e-3, "{m}");
        assert_eq!(m["clip_fraction_first"].as_f64(), Some(0.0), "{m}");
    }
    assert_eq!(r.len(), 12);
    let head = r[..3].iter().sum::<f64>() / 3.0;
    let tail = r[9..].iter().sum::<f64>() / 3.0;
    // About half the vocabulary is "low" at the start.
    assert!((0.2..0.8).contains(&head), "{r:?}");
    assert!(tail > head + 0.25, "{r:?}");
    assert_eq!(s.steps, 12);
    for f in [
        "model/model.safetensors",
        "reward.svg",
        "policy.svg",
        "config.toml",
        "summary.json",
    ] {
        assert!(dir.path().join("run").join(f).exists(), "{f}");
    }
}

#[test]
fn tempered_rollouts_record_the_trained_logprobs() {
    // Sampling at T = 0.5 with tempered log-probabilities: the trainer's
    // forward at logit scale 2 must give the engine's recorded values, so
    // the first inner step's ratio is 1 (a side without the scale would
    // put it near exp(mean(log p_T - log p)), far from 1 at T = 0.5).
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let cfg = config_sampling(
        dir.path(),
        2,
        1e-2,
        0.05,
        "temperature = 0.5\nlogprobs = \"tempered\"",
    );
    apr_train::train_grpo_with::<B>(&cfg, &Default::default(), &RunOptions::default(), &low_ids)
        .unwrap();
    let rows = metrics(dir.path());
    assert_eq!(rows.len(), 2);
    for m in &rows {
        let ratio = m["ratio_first"].as_f64().unwrap();
        assert!((ratio - 1.0).abs() < 1e-3, "{m}");
        assert_eq!(m["clip_fraction_first"].as_f64(), Some(0.0), "{m}");
    }
    assert!(rows[0]["kl"].as_f64().unwrap().abs() < 1e-5, "{}", rows[0]);
}

#[test]
fn resume_reproduces_metrics_and_kl_starts_at_zero() {
    let straight = tempfile::tempdir().unwrap();
    setup(straight.path());
    let cfg = config(straight.path(), 4, 1e-2, 0.05);
    apr_train::train_grpo_with::<B>(&cfg, &Default::default(), &RunOptions::default(), &low_ids)
        .unwrap();
    let want = metrics(straight.path());
    // The first step's first update sees the reference policy itself.
    assert!(want[0]["kl"].as_f64().unwrap().abs() < 1e-5, "{}", want[0]);
    assert!(want[3]["kl"].as_f64().unwrap() > 1e-4, "{}", want[3]);

    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let cfg = config(dir.path(), 4, 1e-2, 0.05);
    let stop = RunOptions {
        progress: false,
        stop_after: Some(2),
    };
    apr_train::train_grpo_with::<B>(&cfg, &Default::default(), &stop, &low_ids).unwrap();
    assert_eq!(metrics(dir.path()).len(), 2);
    apr_train::train_grpo_with::<B>(&cfg, &Default::default(), &RunOptions::default(), &low_ids)
        .unwrap();
    let got = metrics(dir.path());
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        for k in [
            "step",
            "reward",
            "sequences",
            "loss",
            "kl",
            "grad_norm",
            "clip_fraction",
        ] {
            let (a, b) = (g[k].as_f64().unwrap(), w[k].as_f64().unwrap());
            assert!(
                (a - b).abs() < 1e-6,
                "{k} at step {}: {a} vs {b}",
                g["step"]
            );
        }
    }
}
