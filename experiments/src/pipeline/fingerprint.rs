//! `fingerprints.json`: for each finished stage, the settings its output
//! depends on (its own section of the config and, nested, the fingerprints
//! of the stages it reads). A cached stage whose recorded fingerprint
//! differs from the config's is refused before any work, naming the keys,
//! so one run directory never mixes the outputs of two configs.

use crate::error::{Error, Result};
use apr_model::checkpoint::write_atomic;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

const FILE: &str = "fingerprints.json";

/// Keys that may change between runs: they decide when a stage stops and
/// what it logs, not what it computes.
pub(crate) const MAY_CHANGE: &[&str] = &[
    "time_limit_minutes",
    "checkpoint_every",
    "eval_every",
    "val_every",
];

/// Stage name -> fingerprint.
pub(crate) type Fingerprints = BTreeMap<String, Value>;

/// `v` with the dotted `paths` removed (file locations inside the run
/// directory: moving the directory does not change a result).
pub(crate) fn without(mut v: Value, paths: &[&str]) -> Value {
    for p in paths {
        let mut at = &mut v;
        let parts: Vec<&str> = p.split('.').collect();
        for (i, k) in parts.iter().enumerate() {
            let Some(m) = at.as_object_mut() else { break };
            if i + 1 == parts.len() {
                m.remove(*k);
                break;
            }
            match m.get_mut(*k) {
                Some(x) => at = x,
                None => break,
            }
        }
    }
    v
}

/// The fingerprints recorded in `dir` (empty when none are).
pub(crate) fn read(dir: &Path) -> Result<Fingerprints> {
    crate::jsonl::read_json_or_default(&dir.join(FILE))
}

/// Whether `dir` holds recorded fingerprints.
pub(crate) fn recorded(dir: &Path) -> bool {
    dir.join(FILE).exists()
}

/// Records every fingerprint of `all` (the baseline of a folder made
/// before fingerprints, computed from its recorded config).
pub(crate) fn record_all(dir: &Path, all: &Fingerprints) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(all).map_err(|e| Error::Config(e.to_string()))?;
    Ok(write_atomic(&dir.join(FILE), &bytes)?)
}

/// Records `fp` as the fingerprint of `stage`.
pub(crate) fn record(dir: &Path, stage: &str, fp: &Value) -> Result<()> {
    let mut all = read(dir)?;
    all.insert(stage.to_string(), fp.clone());
    let bytes = serde_json::to_vec_pretty(&all).map_err(|e| Error::Config(e.to_string()))?;
    Ok(write_atomic(&dir.join(FILE), &bytes)?)
}

/// Checks the finished stages (`done`: stage name -> whether its output
/// exists) against the fingerprints `want`: a stage whose recorded
/// fingerprint differs is an error naming it and the keys; a finished
/// stage without one (a folder from before fingerprints) is adopted.
pub(crate) fn check(dir: &Path, want: &Fingerprints, done: &dyn Fn(&str) -> bool) -> Result<()> {
    let have = read(dir)?;
    let mut bad = Vec::new();
    for (stage, fp) in want {
        if !done(stage) {
            continue;
        }
        match have.get(stage) {
            Some(old) => {
                let keys = apr_train::run_dir::differing_keys(old, fp, MAY_CHANGE);
                if !keys.is_empty() {
                    bad.push(format!(
                        "[{stage}] {}",
                        apr_train::run_dir::describe(old, fp, &keys)
                    ));
                }
            }
            None => {
                eprintln!("[{stage}] cached without a fingerprint: adopting this config's");
                record(dir, stage, fp)?;
            }
        }
    }
    if bad.is_empty() {
        return Ok(());
    }
    Err(Error::Config(format!(
        "{} holds stages made under another config: {}; refusing to mix them: \
         restore those settings, choose another --out, or pass --force to redo every stage",
        dir.display(),
        bad.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn without_drops_nested_paths_and_ignores_missing_ones() {
        let v = json!({"out": "x", "data": {"train": ["a"], "kind": "apr"}, "k": 1});
        assert_eq!(
            without(v, &["out", "data.train", "nope.deeper", "k.x"]),
            json!({"data": {"kind": "apr"}, "k": 1})
        );
    }

    #[test]
    fn a_finished_stage_under_another_config_is_refused_and_a_new_one_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let mut want = Fingerprints::new();
        want.insert("problems".into(), json!({"seed": 1, "count": 10}));
        want.insert(
            "apr-sft".into(),
            json!({"lr": 1e-3, "time_limit_minutes": 5}),
        );
        // No record yet: both finished stages are adopted.
        check(dir.path(), &want, &|_| true).unwrap();
        assert_eq!(read(dir.path()).unwrap(), want);
        // A time limit may change; the seed may not.
        let mut other = want.clone();
        other.insert(
            "apr-sft".into(),
            json!({"lr": 1e-3, "time_limit_minutes": 9}),
        );
        check(dir.path(), &other, &|_| true).unwrap();
        other.insert("problems".into(), json!({"seed": 2, "count": 10}));
        let e = check(dir.path(), &other, &|_| true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("[problems] seed: 1 -> 2"), "{e}");
        // A stage not finished is not compared.
        check(dir.path(), &other, &|s| s != "problems").unwrap();
    }
}
