//! A run's kept checkpoint exports and their average: with
//! `optim.average_last = k`, each checkpoint's model is also exported to
//! `checkpoints/step-NNNNNN/` (the last `k` kept), and when the run ends
//! their element-wise mean is written to `model-avg/` (`apr_model::average`).
//! The exports are on disk, so a resumed run averages the same checkpoints.

use crate::error::{Error, Result};
use apr_model::{checkpoint, Llama};
use burn::tensor::backend::Backend;
use std::path::{Path, PathBuf};

/// Directory of a run's kept checkpoint exports.
pub fn snapshots_dir(out: &Path) -> PathBuf {
    out.join("checkpoints")
}

/// Directory of the averaged model.
pub fn averaged_model_dir(out: &Path) -> PathBuf {
    out.join("model-avg")
}

fn snapshot_dir(out: &Path, step: usize) -> PathBuf {
    snapshots_dir(out).join(format!("step-{step:06}"))
}

/// The kept exports of the run in `out`, by step (ascending).
pub fn kept(out: &Path) -> Result<Vec<(usize, PathBuf)>> {
    let dir = snapshots_dir(out);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(&dir, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::io(&dir, e))?.path();
        let step = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("step-"))
            .and_then(|s| s.parse::<usize>().ok());
        if let Some(step) = step {
            found.push((step, path));
        }
    }
    found.sort();
    Ok(found)
}

/// Exports `model` as the checkpoint of `step` and removes all but the
/// last `keep` exports.
pub fn save<B: Backend>(
    out: &Path,
    step: usize,
    keep: usize,
    model: &Llama<B>,
    tokenizer_json: &str,
) -> Result<()> {
    let parent = snapshots_dir(out);
    std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
    checkpoint::save(model, &snapshot_dir(out, step), Some(tokenizer_json))?;
    let all = kept(out)?;
    for (_, old) in all.iter().take(all.len().saturating_sub(keep)) {
        std::fs::remove_dir_all(old).map_err(|e| Error::io(old, e))?;
    }
    Ok(())
}

/// Writes the mean of the last `k` kept exports (at most `k`; all there
/// are if fewer) to `model-avg/` and returns that directory and the steps
/// averaged.
pub fn average(out: &Path, k: usize) -> Result<(PathBuf, Vec<usize>)> {
    let all = kept(out)?;
    let last = &all[all.len().saturating_sub(k)..];
    if last.is_empty() {
        return Err(Error::Config(format!(
            "no checkpoint exports in {} to average",
            snapshots_dir(out).display()
        )));
    }
    let dirs: Vec<&PathBuf> = last.iter().map(|(_, d)| d).collect();
    let dst = averaged_model_dir(out);
    apr_model::average::average_dirs(&dirs, &dst)?;
    Ok((dst, last.iter().map(|(s, _)| *s).collect()))
}
