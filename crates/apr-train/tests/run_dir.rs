//! The run directory's guards on a small SFT run: a held lock refuses a
//! second run, a resume under another config is refused naming the keys, a
//! rerun of a finished run touches nothing, a kill between the two renames
//! of a checkpoint resumes from it, and a run that diverges stops with the
//! last good checkpoint kept.

mod common;

use apr_train::{Error, RunOptions, SftConfig};
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
num_layers = 1
num_heads = 2
num_kv_heads = 1
max_seq_len = 160
[data]
train = ["{data}"]
kind = "sosp"
conditioning = "none"
val_fraction = 0.2
[optim]
seed = 3
lr = {lr}
warmup_steps = 0
max_steps = {steps}
batch_tokens = 512
eval_every = 2
checkpoint_every = 2
"#,
        out = dir.join("run").display(),
        data = dir.join("t.jsonl").display(),
    );
    SftConfig::from_toml(&text).unwrap()
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_traces(&dir.path().join("t.jsonl"), 6);
    dir
}

fn train(cfg: &SftConfig, stop_after: Option<usize>) -> apr_train::Result<apr_train::SftSummary> {
    let opts = RunOptions {
        progress: false,
        stop_after,
    };
    apr_train::train::<B>(cfg, &Default::default(), &opts)
}

fn steps_logged(run: &Path) -> Vec<u64> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

fn state_step(run: &Path) -> u64 {
    let t = std::fs::read(run.join("state/state.json")).unwrap();
    serde_json::from_slice::<serde_json::Value>(&t).unwrap()["step"]
        .as_u64()
        .unwrap()
}

#[test]
fn a_second_run_on_a_locked_directory_fails_at_once() {
    let dir = setup();
    let cfg = config(dir.path(), 2, 1e-3);
    let _held = apr_train::run_dir::RunLock::acquire(&cfg.out).unwrap();
    match train(&cfg, None) {
        Err(Error::Locked { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(!cfg.out.join("metrics.jsonl").exists());
}

#[test]
fn a_resume_under_another_config_is_refused_naming_the_keys() {
    let dir = setup();
    let cfg = config(dir.path(), 4, 1e-3);
    train(&cfg, Some(2)).unwrap();
    let recorded = std::fs::read_to_string(cfg.out.join("config.toml")).unwrap();
    let mut other = config(dir.path(), 4, 2e-3);
    other.optim.batch_tokens = 256;
    let e = train(&other, None).unwrap_err().to_string();
    assert!(e.contains("optim.batch_tokens: 512 -> 256"), "{e}");
    assert!(e.contains("optim.lr: 0.001 -> 0.002"), "{e}");
    // Nothing was touched: the recorded config and the position stay.
    assert_eq!(
        std::fs::read_to_string(cfg.out.join("config.toml")).unwrap(),
        recorded
    );
    assert_eq!(steps_logged(&cfg.out), [1, 2]);
    // More steps and a time limit may change on resume.
    let mut more = config(dir.path(), 6, 1e-3);
    more.optim.time_limit_minutes = Some(30.0);
    train(&more, None).unwrap();
    assert_eq!(steps_logged(&cfg.out), [1, 2, 3, 4, 5, 6]);
    // --force's clear starts over.
    apr_train::run_dir::clear(&cfg.out).unwrap();
    train(&other, Some(1)).unwrap();
    assert_eq!(steps_logged(&cfg.out), [1]);
}

#[test]
fn a_rerun_of_a_finished_run_touches_nothing() {
    let dir = setup();
    let cfg = config(dir.path(), 2, 1e-3);
    let first = train(&cfg, None).unwrap();
    let files = [
        "summary.json",
        "metrics.jsonl",
        "config.toml",
        "model/model.safetensors",
    ];
    let read = |f: &str| std::fs::read(cfg.out.join(f)).unwrap();
    let before: Vec<Vec<u8>> = files.iter().map(|f| read(f)).collect();
    let mtime = |f: &str| {
        std::fs::metadata(cfg.out.join(f))
            .unwrap()
            .modified()
            .unwrap()
    };
    let times: Vec<_> = files.iter().map(|f| mtime(f)).collect();
    let again = train(&cfg, None).unwrap();
    // The recorded summary, read back (serde_json's float parsing may
    // differ in the last digit).
    assert_eq!(
        (again.steps, again.final_train_loss, &again.model_dir),
        (first.steps, first.final_train_loss, &first.model_dir)
    );
    assert!((again.tokens_per_second / first.tokens_per_second - 1.0).abs() < 1e-12);
    assert!(again.final_train_loss.is_finite());
    for (i, f) in files.iter().enumerate() {
        assert_eq!(read(f), before[i], "{f} changed");
        assert_eq!(mtime(f), times[i], "{f} rewritten");
    }
    // A summary an older version wrote with a null loss is mended.
    let mut v: serde_json::Value = serde_json::from_slice(&before[0]).unwrap();
    v["final_train_loss"] = serde_json::Value::Null;
    std::fs::write(cfg.out.join("summary.json"), v.to_string()).unwrap();
    let mended = train(&cfg, None).unwrap();
    assert_eq!(mended.final_train_loss, first.final_train_loss);
}

#[test]
fn a_kill_between_the_renames_of_a_checkpoint_resumes_from_it() {
    let dir = setup();
    let cfg = config(dir.path(), 6, 1e-3);
    train(&cfg, Some(4)).unwrap();
    let run = &cfg.out;
    let lines = |n: usize| -> Vec<f64> {
        let t = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
        t.lines()
            .take(n)
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["seconds"]
                    .as_f64()
                    .unwrap()
            })
            .collect()
    };
    // The wall-clock times of steps 1-4 as logged: a run that
    // restarted from step 0 would log them again, with other times.
    let first = lines(4);
    // The first rename of the next switch happened, the second did not:
    // `state` moved aside, the staged step-4 state beside it.
    std::fs::rename(run.join("state"), run.join("state.old")).unwrap();
    train(&cfg, None).unwrap();
    assert_eq!(steps_logged(run), [1, 2, 3, 4, 5, 6]);
    assert_eq!(lines(4), first);
    assert_eq!(state_step(run), 6);
    assert!(!run.join("state.old").exists());

    // The same with the staged state present: it is the newer one (step
    // 4), the old one (step 2) aside.
    let dir = setup();
    let cfg = config(dir.path(), 6, 1e-3);
    let run = &cfg.out;
    train(&cfg, Some(2)).unwrap();
    let keep = tempfile::tempdir().unwrap();
    let copy = |from: &Path, to: &Path| {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    };
    copy(&run.join("state"), &keep.path().join("s2"));
    train(&cfg, Some(2)).unwrap();
    let first = lines(4);
    std::fs::rename(run.join("state"), run.join("state.tmp")).unwrap();
    std::fs::rename(keep.path().join("s2"), run.join("state.old")).unwrap();
    train(&cfg, None).unwrap();
    assert_eq!(steps_logged(run), [1, 2, 3, 4, 5, 6]);
    assert_eq!(lines(4), first);
}

#[test]
fn a_diverged_run_stops_and_keeps_the_last_good_checkpoint() {
    use apr_model::Llama;
    use burn::module::{Module, Param};
    use burn::record::{BinFileRecorder, FullPrecisionSettings, Recorder};
    let dir = setup();
    let cfg = config(dir.path(), 6, 1e-3);
    train(&cfg, Some(2)).unwrap();
    let run = &cfg.out;
    let good = std::fs::read(run.join("model/model.safetensors")).unwrap();
    // Poison the saved state's weights, as a learning rate far too high
    // would, and resume: the first step's loss is NaN.
    let dev = Default::default();
    let rec = BinFileRecorder::<FullPrecisionSettings>::new();
    let file = run.join("state/model");
    let mut model = Llama::<apr_model::Cpu>::init(&cfg.model_config().unwrap(), 1, &dev)
        .load_record(rec.load(file.clone(), &dev).unwrap());
    model.embed = Param::from_tensor(model.embed.val().mul_scalar(f32::NAN));
    rec.record(model.into_record(), file).unwrap();
    let e = train(&cfg, None).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Diverged { step: 3, .. }), "{msg}");
    assert!(msg.contains("the loss is NaN"), "{msg}");
    assert!(msg.contains("checkpoint of step 2"), "{msg}");
    assert_eq!(state_step(run), 2);
    assert_eq!(
        std::fs::read(run.join("model/model.safetensors")).unwrap(),
        good
    );
    assert_eq!(steps_logged(run), [1, 2]);
}
