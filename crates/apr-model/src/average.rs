//! Weight averaging of saved checkpoints: the element-wise mean of several
//! models of one architecture (for example the last checkpoints of one
//! training run), written as a checkpoint of the same layout.
//!
//! Averaging a run's last checkpoints is a common way to smooth the
//! step-to-step noise of the final weights. On the tiny preset it did not
//! raise greedy accuracy (`docs/results/countdown-apr-rl-tiny/tried.md`,
//! "Checkpoints, averaging and the end of SFT").

use crate::checkpoint::{self, HostTensor, CONFIG, TOKENIZER};
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// The element-wise mean of `models`, which must hold the same tensor
/// names with the same shapes. Sums are taken in f64, in the order given.
pub fn mean_tensors(
    models: &[BTreeMap<String, HostTensor>],
) -> Result<BTreeMap<String, HostTensor>> {
    let first = models
        .first()
        .ok_or_else(|| Error::Input("no models to average".into()))?;
    let mut out = BTreeMap::new();
    for (name, t) in first {
        let mut sum: Vec<f64> = t.data.iter().map(|&x| f64::from(x)).collect();
        for (i, m) in models.iter().enumerate().skip(1) {
            let other = m
                .get(name)
                .ok_or_else(|| Error::Input(format!("model {i} has no tensor {name}")))?;
            if other.shape != t.shape {
                return Err(Error::Input(format!(
                    "{name}: shape {:?} in model {i}, {:?} in model 0",
                    other.shape, t.shape
                )));
            }
            sum.iter_mut()
                .zip(&other.data)
                .for_each(|(s, &x)| *s += f64::from(x));
        }
        let n = models.len() as f64;
        let data = sum.into_iter().map(|s| (s / n) as f32).collect();
        out.insert(
            name.clone(),
            HostTensor {
                shape: t.shape.clone(),
                data,
            },
        );
    }
    if let Some((i, name)) = models.iter().enumerate().skip(1).find_map(|(i, m)| {
        m.keys()
            .find(|k| !first.contains_key(*k))
            .map(|k| (i, k.clone()))
    }) {
        return Err(Error::Input(format!(
            "model {i} has tensor {name}, model 0 has not"
        )));
    }
    Ok(out)
}

/// Averages the checkpoints in `dirs` into `out` (written whole, atomically).
/// Every checkpoint must have the same model config and, where present, the
/// same tokenizer file; the first one's tokenizer is written beside the mean.
pub fn average_dirs<P: AsRef<Path>>(dirs: &[P], out: &Path) -> Result<()> {
    let mut config: Option<ModelConfig> = None;
    let mut tokenizer: Option<(Vec<u8>, &Path)> = None;
    let mut models = Vec::with_capacity(dirs.len());
    for dir in dirs {
        let dir = dir.as_ref();
        let (c, tensors, _) = checkpoint::read_dir(dir)?;
        match &config {
            Some(first) if *first != c => {
                return Err(Error::checkpoint(
                    dir.join(CONFIG),
                    "model config differs from the first checkpoint's",
                ))
            }
            Some(_) => {}
            None => config = Some(c),
        }
        let tpath = dir.join(TOKENIZER);
        if let Ok(tok) = std::fs::read(&tpath) {
            match &tokenizer {
                Some((first, from)) if *first != tok => {
                    return Err(Error::checkpoint(
                        &tpath,
                        format!("tokenizer differs from {}", from.display()),
                    ))
                }
                Some(_) => {}
                None => tokenizer = Some((tok, dir)),
            }
        }
        models.push(tensors);
    }
    let config = config.ok_or_else(|| Error::Input("no checkpoints to average".into()))?;
    let mean = mean_tensors(&models)?;
    let tok = match &tokenizer {
        Some((bytes, from)) => Some(
            std::str::from_utf8(bytes)
                .map_err(|e| Error::checkpoint(from.join(TOKENIZER), e.to_string()))?,
        ),
        None => None,
    };
    checkpoint::write_model(mean, &config, out, tok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: &[usize], data: &[f32]) -> HostTensor {
        HostTensor {
            shape: shape.to_vec(),
            data: data.to_vec(),
        }
    }

    #[test]
    fn the_mean_is_taken_element_wise() {
        let a = BTreeMap::from([("w".to_string(), t(&[2], &[1.0, -2.0]))]);
        let b = BTreeMap::from([("w".to_string(), t(&[2], &[2.0, 4.0]))]);
        let c = BTreeMap::from([("w".to_string(), t(&[2], &[6.0, 1.0]))]);
        let m = mean_tensors(&[a, b, c]).unwrap();
        assert_eq!(m["w"], t(&[2], &[3.0, 1.0]));
    }

    #[test]
    fn mismatched_models_are_errors() {
        let a = BTreeMap::from([("w".to_string(), t(&[2], &[1.0, 2.0]))]);
        let shape = BTreeMap::from([("w".to_string(), t(&[1, 2], &[1.0, 2.0]))]);
        let extra = BTreeMap::from([
            ("w".to_string(), t(&[2], &[1.0, 2.0])),
            ("v".to_string(), t(&[1], &[0.0])),
        ]);
        let missing = BTreeMap::from([("v".to_string(), t(&[2], &[1.0, 2.0]))]);
        for other in [shape, extra, missing] {
            let e = mean_tensors(&[a.clone(), other]).unwrap_err().to_string();
            assert!(e.contains("model 1"), "{e}");
        }
        assert!(mean_tensors(&[]).is_err());
    }
}
