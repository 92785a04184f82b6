//! Run state on disk, shared by the SFT and GRPO trainers: the training
//! state (model, optimiser, a JSON position) written atomically as one
//! directory, and the metrics file rewritten to the checkpoint on resume.

use crate::error::{Error, Result};
use apr_model::{checkpoint, Llama};
use burn::module::Module;
use burn::record::{BinFileRecorder, FullPrecisionSettings, Record, Recorder};
use burn::tensor::backend::Backend;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `v` as pretty JSON, atomically.
pub fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(v).map_err(|e| Error::Config(e.to_string()))?;
    checkpoint::write_atomic(path, &bytes).map_err(Error::from)
}

/// Saves model, optimiser record and position into `dir` (staged, then
/// renamed over the old state, so a kill leaves the old or the new one).
pub fn save<B: Backend, R: Record<B>, S: Serialize>(
    dir: &Path,
    model: &Llama<B>,
    optim: R,
    state: &S,
) -> Result<()> {
    let recorder = BinFileRecorder::<FullPrecisionSettings>::new();
    let tmp = checkpoint::staging_dir(dir)?;
    let bad = |r: String| Error::State {
        path: tmp.clone(),
        reason: r,
    };
    recorder
        .record(model.clone().into_record(), tmp.join("model"))
        .map_err(|e| bad(e.to_string()))?;
    recorder
        .record(optim, tmp.join("optim"))
        .map_err(|e| bad(e.to_string()))?;
    write_json(&tmp.join("state.json"), state)?;
    checkpoint::replace_dir(&tmp, dir).map_err(Error::from)
}

/// The step of the state saved in `dir`, without loading it (`None` when
/// there is none).
pub fn saved_step(dir: &Path) -> Result<Option<usize>> {
    checkpoint::recover_dir(dir)?;
    let path = dir.join("state.json");
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let v: serde_json::Value = serde_json::from_slice(&text).map_err(|e| Error::State {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(v["step"].as_u64().map(|s| s as usize))
}

/// Whether step `step` (1-based) ends with a checkpoint: every `every`
/// steps (0: never on a schedule) and whenever `forced` (the last step, a
/// time limit, a requested stop).
pub fn checkpoint_due(step: usize, every: usize, forced: bool) -> bool {
    forced || (every > 0 && step.is_multiple_of(every))
}

/// A checkpoint of a run: the training state into `state_dir` ([`save`])
/// and the model in the Hugging Face layout, with the tokenizer, into
/// `model_dir`.
pub fn save_run<B: burn::tensor::backend::AutodiffBackend, R: Record<B>, S: Serialize>(
    state_dir: &Path,
    model_dir: &Path,
    model: &Llama<B>,
    optim: R,
    state: &S,
    tokenizer_json: &str,
) -> Result<()> {
    use burn::module::AutodiffModule;
    save(state_dir, model, optim, state)?;
    checkpoint::save(&model.valid(), model_dir, Some(tokenizer_json)).map_err(Error::from)
}

/// What [`load`] restores.
pub type Loaded<B, R, S> = (Llama<B>, R, S);

/// Loads a state [`save`] wrote, or `None` when `dir` holds none.
pub fn load<B: Backend, R: Record<B>, S: DeserializeOwned>(
    dir: &Path,
    model: Llama<B>,
    device: &B::Device,
) -> Result<Option<Loaded<B, R, S>>> {
    checkpoint::recover_dir(dir)?;
    if !dir.join("state.json").exists() {
        return Ok(None);
    }
    let recorder = BinFileRecorder::<FullPrecisionSettings>::new();
    let bad = |r: String| Error::State {
        path: dir.to_path_buf(),
        reason: r,
    };
    let text = std::fs::read(dir.join("state.json")).map_err(|e| Error::io(dir, e))?;
    let st: S = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
    let rec = recorder
        .load(dir.join("model"), device)
        .map_err(|e| bad(e.to_string()))?;
    let model = model.load_record(rec);
    let optim: R = recorder
        .load(dir.join("optim"), device)
        .map_err(|e| bad(e.to_string()))?;
    Ok(Some((model, optim, st)))
}

/// Where a run starts: its model, optimiser and position (from
/// `out/state` when a checkpoint is there, else the ones given), its
/// metrics file cut to that position, and the tokenizer JSON exported with
/// every checkpoint.
pub struct Resumed<B: burn::tensor::backend::AutodiffBackend, O, S> {
    /// The model.
    pub model: Llama<B>,
    /// The optimiser.
    pub optim: O,
    /// The position.
    pub state: S,
    /// `out/metrics.jsonl`.
    pub metrics: Metrics,
    /// The tokenizer, as `tokenizer.json`.
    pub tokenizer_json: String,
}

/// AdamW with the given moments, epsilon and weight decay.
pub fn adamw<B: burn::tensor::backend::AutodiffBackend>(
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
) -> impl burn::optim::Optimizer<Llama<B>, B> {
    burn::optim::AdamWConfig::new()
        .with_beta_1(beta1 as f32)
        .with_beta_2(beta2 as f32)
        .with_epsilon(eps as f32)
        .with_weight_decay(weight_decay as f32)
        .init::<B, Llama<B>>()
}

/// Resumes the run in `out` (see [`Resumed`]); `step` reads a position's
/// step, to cut the metrics.
pub fn resume<B, O, S>(
    out: &Path,
    model: Llama<B>,
    optim: O,
    fresh: S,
    step: impl Fn(&S) -> usize,
    device: &B::Device,
) -> Result<Resumed<B, O, S>>
where
    B: burn::tensor::backend::AutodiffBackend,
    O: burn::optim::Optimizer<Llama<B>, B>,
    S: DeserializeOwned,
{
    let (model, optim, state) =
        match load::<B, O::Record, S>(&out.join("state"), model.clone(), device)? {
            Some((m, rec, s)) => (m, optim.load_record(rec), s),
            None => (model, optim, fresh),
        };
    let metrics = Metrics::open(&out.join("metrics.jsonl"), step(&state))?;
    let tokenizer_json = apr_trace::TraceTokenizer::new()
        .to_hf_json()
        .map_err(|e| Error::Config(e.to_string()))?;
    Ok(Resumed {
        model,
        optim,
        state,
        metrics,
        tokenizer_json,
    })
}

/// A run's `metrics.jsonl`: one JSON object per step, kept in memory for
/// plots and appended to the file as it grows. Lines are read back by key
/// as JSON values, so files with other or fewer keys (older runs) still
/// load.
pub struct Metrics {
    path: PathBuf,
    file: std::fs::File,
    /// Every line so far.
    pub rows: Vec<serde_json::Value>,
}

impl Metrics {
    /// Opens `path`, keeping only the lines whose `step` is at most
    /// `upto` (the checkpoint a run resumes from; 0 for a fresh run).
    pub fn open(path: &Path, upto: usize) -> Result<Metrics> {
        let rows: Vec<serde_json::Value> = match std::fs::read_to_string(path) {
            Ok(text) if upto > 0 => text
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|v| v["step"].as_u64().is_some_and(|s| s as usize <= upto))
                .collect(),
            _ => Vec::new(),
        };
        let mut text = String::new();
        for m in &rows {
            text.push_str(&m.to_string());
            text.push('\n');
        }
        checkpoint::write_atomic(path, text.as_bytes())?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(Metrics {
            path: path.to_path_buf(),
            file,
            rows,
        })
    }

    /// Appends one line: `row` as a JSON object (a trainer's typed row,
    /// such as [`crate::sft::SftRow`]).
    pub fn push<R: Serialize>(&mut self, row: &R) -> Result<()> {
        let m = serde_json::to_value(row).map_err(|e| Error::Config(e.to_string()))?;
        writeln!(self.file, "{m}").map_err(|e| Error::io(&self.path, e))?;
        self.rows.push(m);
        Ok(())
    }

    /// The last numeric value of `field` (a run resumed at its end reports
    /// what it logged last).
    pub fn last(&self, field: &str) -> Option<f64> {
        self.rows.iter().rev().find_map(|m| m[field].as_f64())
    }

    /// The (step, value) points of a numeric field.
    pub fn series(&self, field: &str) -> Vec<(f64, f64)> {
        self.rows
            .iter()
            .filter_map(|m| Some((m["step"].as_f64()?, m[field].as_f64()?)))
            .collect()
    }
}

/// A progress bar over `len` steps (hidden unless `show`).
pub fn progress(show: bool, len: u64, pos: u64) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(len);
    b.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} steps {elapsed_precise} eta {eta} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    b.set_position(pos);
    b
}
