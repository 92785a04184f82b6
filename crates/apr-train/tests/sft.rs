//! SFT end to end on a small model: the loss falls on a fixed batch, and a
//! run stopped and resumed gives the same loss curve as an uninterrupted one.

mod common;

use apr_train::{RunOptions, SftConfig};
use common::write_traces;
use std::path::Path;

type B = apr_model::CpuTrain;

fn config(dir: &Path, steps: usize, lr: f64) -> SftConfig {
    let text = format!(
        r#"
out = "{out}"
[model]
preset = "tiny"
hidden_size = 32
intermediate_size = 64
num_layers = 2
num_heads = 2
num_kv_heads = 1
max_seq_len = 160
[data]
train = ["{data}"]
kind = "sosp"
conditioning = "budget"
val_fraction = 0.2
[optim]
seed = 3
lr = {lr}
warmup_steps = 2
max_steps = {steps}
batch_tokens = 1024
eval_every = 2
checkpoint_every = 2
"#,
        out = dir.join("run").display(),
        data = dir.join("t.jsonl").display(),
    );
    SftConfig::from_toml(&text).unwrap()
}

fn losses(dir: &Path) -> Vec<(u64, f64, Option<f64>)> {
    std::fs::read_to_string(dir.join("run/metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["step"].as_u64().unwrap(),
                v["loss"].as_f64().unwrap(),
                v["val_loss"].as_f64(),
            )
        })
        .collect()
}

#[test]
fn loss_falls_when_training_on_a_few_problems() {
    let dir = tempfile::tempdir().unwrap();
    write_traces(&dir.path().join("t.jsonl"), 6);
    let cfg = config(dir.path(), 150, 1e-2);
    let s = apr_train::train::<B>(&cfg, &Default::default(), &RunOptions::default()).unwrap();
    let l = losses(dir.path());
    assert_eq!(l.len(), 150);
    // ln(1233) = 7.1 at the start; the grammar is learnt quickly.
    assert!(l[0].1 > 6.0, "{:?}", l[0]);
    assert!(s.final_train_loss < 1.0, "{}", s.final_train_loss);
    assert!(dir.path().join("run/model/model.safetensors").exists());
    assert!(dir.path().join("run/loss.svg").exists());
    assert!(dir.path().join("run/config.toml").exists());
}

#[test]
fn resume_reproduces_the_uninterrupted_loss_curve() {
    let dir = tempfile::tempdir().unwrap();
    write_traces(&dir.path().join("t.jsonl"), 8);
    let straight = tempfile::tempdir().unwrap();
    std::fs::copy(dir.path().join("t.jsonl"), straight.path().join("t.jsonl")).unwrap();
    let cfg = config(straight.path(), 6, 3e-3);
    apr_train::train::<B>(&cfg, &Default::default(), &RunOptions::default()).unwrap();
    let want = losses(straight.path());

    let cfg = config(dir.path(), 6, 3e-3);
    let stop = RunOptions {
        progress: false,
        stop_after: Some(4),
    };
    apr_train::train::<B>(&cfg, &Default::default(), &stop).unwrap();
    assert_eq!(losses(dir.path()).len(), 4);
    apr_train::train::<B>(&cfg, &Default::default(), &RunOptions::default()).unwrap();
    let got = losses(dir.path());
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.0, w.0);
        assert!((g.1 - w.1).abs() < 1e-5, "step {}: {} vs {}", g.0, g.1, w.1);
        match (g.2, w.2) {
            (Some(a), Some(b)) => assert!((a - b).abs() < 1e-5),
            (None, None) => {}
            other => panic!("validation points differ: {other:?}"),
        }
    }
}

/// Data-parallel training over two "devices" (on the CPU backend, the CPU
/// twice: the replicas, threads, gradient moves and the accumulation all
/// run) gives the loss curve of the same micro-batches on one device.
#[test]
fn data_parallel_steps_match_one_device() {
    let run = |dp: usize| {
        let dir = tempfile::tempdir().unwrap();
        write_traces(&dir.path().join("t.jsonl"), 8);
        let mut cfg = config(dir.path(), 4, 3e-3);
        cfg.optim.accum_steps = 2;
        cfg.optim.batch_tokens = 512;
        cfg.optim.data_parallel = dp;
        cfg.validate().unwrap();
        apr_train::train::<B>(&cfg, &Default::default(), &RunOptions::default()).unwrap();
        losses(dir.path())
    };
    let (one, two) = (run(1), run(2));
    assert_eq!(one.len(), 4);
    for (a, b) in one.iter().zip(&two) {
        assert!((a.1 - b.1).abs() < 1e-6, "step {}: {} vs {}", a.0, a.1, b.1);
    }
    // The loss moved: the steps did train.
    assert!((one[0].1 - one[3].1).abs() > 1e-3, "{one:?}");
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 4, 3e-3);
    cfg.optim.data_parallel = 2;
    assert!(cfg.validate().is_err(), "more devices than micro-batches");
}

/// `average_last`: the last checkpoints' exports are kept (older ones
/// removed), their mean is `model-avg/`, and a run stopped and resumed in
/// between keeps and averages the same checkpoints.
#[test]
fn average_last_means_the_kept_checkpoints() {
    use apr_model::checkpoint::{parse_safetensors, WEIGHTS};
    let dir = tempfile::tempdir().unwrap();
    write_traces(&dir.path().join("t.jsonl"), 8);
    let mut cfg = config(dir.path(), 8, 3e-3);
    cfg.optim.average_last = 3;
    let stop = RunOptions {
        progress: false,
        stop_after: Some(4),
    };
    let s = apr_train::train::<B>(&cfg, &Default::default(), &stop).unwrap();
    assert_eq!(
        s.averaged_model_dir, None,
        "no average before the last step"
    );
    let s = apr_train::train::<B>(&cfg, &Default::default(), &RunOptions::default()).unwrap();
    let run = dir.path().join("run");
    let kept: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(kept, ["step-000004", "step-000006", "step-000008"]);
    assert_eq!(s.averaged_steps, [4, 6, 8]);
    assert_eq!(s.averaged_model_dir, Some(run.join("model-avg")));
    let read = |d: &Path| parse_safetensors(&std::fs::read(d.join(WEIGHTS)).unwrap(), d).unwrap();
    let parts: Vec<_> = kept
        .iter()
        .map(|k| read(&run.join("checkpoints").join(k)))
        .collect();
    let mean = read(&run.join("model-avg"));
    // The last export is the final model; the mean differs from it.
    assert_eq!(parts[2], read(&run.join("model")));
    let name = "model.layers.0.mlp.up_proj.weight";
    let (a, b, c, m) = (
        &parts[0][name],
        &parts[1][name],
        &parts[2][name],
        &mean[name],
    );
    assert_ne!(m.data, c.data);
    for i in 0..m.data.len() {
        let want = ((a.data[i] as f64 + b.data[i] as f64 + c.data[i] as f64) / 3.0) as f32;
        assert_eq!(m.data[i], want, "element {i}");
    }
    assert!(run.join("model-avg/tokenizer.json").exists());
}
