//! A run directory's guards, shared by the SFT and GRPO trainers (and the
//! pipeline): an exclusive OS lock so two processes never write one
//! directory, the recorded config that a resume must match, and a clean
//! start on request.

use crate::error::{Error, Result};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Name of the lock file inside a run directory.
pub const LOCK_FILE: &str = ".lock";

/// An exclusive lock on a run directory (an OS file lock on
/// `dir/.lock`), held while the value lives; the OS releases it when the
/// process exits or dies, so a crashed run never leaves it held.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock of `dir` (created if needed), failing at once with
    /// [`Error::Locked`] when another process (or another handle in this
    /// one) holds it.
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(Error::Locked {
                    dir: dir.to_path_buf(),
                    holder: holder.trim().to_string(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        // The holder's PID, for the message a second process prints.
        let pid = std::process::id().to_string();
        file.set_len(0)
            .and_then(|_| file.rewind())
            .and_then(|_| file.write_all(pid.as_bytes()))
            .map_err(|e| Error::io(&path, e))?;
        Ok(RunLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The dotted keys (`optim.lr`) whose values differ between two configs,
/// present in one only included, leaving out the keys in `may_change` (a
/// key matches an entry equal to it or ending in `.` + the entry). Arrays
/// compare whole.
pub fn differing_keys(old: &Value, new: &Value, may_change: &[&str]) -> Vec<String> {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    flatten("", old, &mut a);
    flatten("", new, &mut b);
    let mut keys: Vec<String> = a.keys().chain(b.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    keys.retain(|k| a.get(k) != b.get(k) && !allowed(k, may_change));
    keys
}

fn allowed(key: &str, may_change: &[&str]) -> bool {
    may_change
        .iter()
        .any(|m| key == *m || key.ends_with(&format!(".{m}")))
}

fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, x, out);
            }
        }
        // An absent optional and a null are the same setting.
        Value::Null => {}
        _ => {
            out.insert(prefix.to_string(), v.clone());
        }
    }
}

/// `key = old -> new` lines for the keys that differ (for messages).
pub fn describe(old: &Value, new: &Value, keys: &[String]) -> String {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    flatten("", old, &mut a);
    flatten("", new, &mut b);
    let show =
        |m: &BTreeMap<String, Value>, k: &str| m.get(k).map_or("(unset)".into(), |v| v.to_string());
    keys.iter()
        .map(|k| format!("{k}: {} -> {}", show(&a, k), show(&b, k)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Refuses to continue the work in `dir` under `new` when the config
/// recorded there (`recorded`, the work's own) differs in a key outside
/// `may_change`: the error names the keys and both values.
pub fn check_same<T: Serialize>(
    dir: &Path,
    recorded: &T,
    new: &T,
    may_change: &[&str],
) -> Result<()> {
    let to = |c: &T| serde_json::to_value(c).map_err(|e| Error::Config(e.to_string()));
    let (old, new) = (to(recorded)?, to(new)?);
    let keys = differing_keys(&old, &new, may_change);
    if keys.is_empty() {
        return Ok(());
    }
    Err(Error::ConfigMismatch {
        dir: dir.to_path_buf(),
        keys: describe(&old, &new, &keys),
    })
}

/// How a trainer starts in its run directory (see [`begin`]).
pub enum Start<S> {
    /// The run had finished under this config: its summary, with every
    /// file left untouched.
    Finished(S),
    /// Train (fresh or resumed), holding the directory's lock.
    Run(RunLock),
}

/// The first thing a trainer does in `out`: take its lock; when work is
/// there (a saved state), check the recorded `config.toml` (read with
/// `parse`) against `cfg`, keys outside `may_change` must agree; when that
/// work is finished (`finished` of the saved step, with a summary and a
/// model export) return its summary and touch nothing; else record `cfg`
/// as `config.toml` and go on.
pub fn begin<C, S>(
    out: &Path,
    cfg: &C,
    parse: impl Fn(&str) -> Result<C>,
    may_change: &[&str],
    finished: impl Fn(usize) -> bool,
) -> Result<Start<S>>
where
    C: Serialize,
    S: serde::de::DeserializeOwned,
{
    let lock = RunLock::acquire(out)?;
    let recorded = out.join("config.toml");
    let saved = crate::state::saved_step(&out.join("state"))?;
    if saved.is_some() && recorded.exists() {
        let text = std::fs::read_to_string(&recorded).map_err(|e| Error::io(&recorded, e))?;
        let old = parse(&text).map_err(|e| Error::State {
            path: recorded.clone(),
            reason: format!("the recorded config does not read: {e}"),
        })?;
        check_same(out, &old, cfg, may_change)?;
    }
    let summary = out.join("summary.json");
    if saved.is_some_and(&finished) && out.join("model").exists() {
        // A summary that does not read (an older version wrote a null
        // loss) is written again by the run's finishing path.
        if let Some(s) = std::fs::read(&summary)
            .ok()
            .and_then(|t| serde_json::from_slice::<S>(&t).ok())
        {
            return Ok(Start::Finished(s));
        }
    }
    let text = toml::to_string_pretty(cfg).map_err(|e| Error::Config(e.to_string()))?;
    apr_model::checkpoint::write_atomic(&recorded, text.as_bytes())?;
    Ok(Start::Run(lock))
}

/// Removes what a training run wrote in `out` (state, metrics, summary,
/// model, recorded config), for a start from scratch (`--force`), holding
/// the directory's lock meanwhile. Other files stay.
pub fn clear(out: &Path) -> Result<()> {
    if !out.exists() {
        return Ok(());
    }
    let _lock = RunLock::acquire(out)?;
    for name in [
        "state",
        "state.tmp",
        "state.old",
        "model",
        "model.tmp",
        "model.old",
        "metrics.jsonl",
        "summary.json",
        "config.toml",
    ] {
        let p = out.join(name);
        let r = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else if p.exists() {
            std::fs::remove_file(&p)
        } else {
            Ok(())
        };
        r.map_err(|e| Error::io(&p, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn differing_keys_are_dotted_and_skip_the_keys_that_may_change() {
        let old = json!({"out": "a", "optim": {"lr": 1e-3, "max_steps": 10, "time_limit_minutes": 5.0},
                         "data": {"train": ["x"]}});
        let new = json!({"out": "a", "optim": {"lr": 2e-3, "max_steps": 10, "time_limit_minutes": null},
                         "data": {"train": ["x", "y"]}, "extra": 1});
        assert_eq!(
            differing_keys(&old, &new, &["time_limit_minutes"]),
            ["data.train", "extra", "optim.lr"]
        );
        assert_eq!(differing_keys(&old, &old, &[]), Vec::<String>::new());
        // A null is the same as an absent key.
        assert_eq!(
            differing_keys(&json!({"a": null}), &json!({}), &[]),
            Vec::<String>::new()
        );
        let d = describe(&old, &new, &["optim.lr".into(), "extra".into()]);
        assert_eq!(d, "optim.lr: 0.001 -> 0.002, extra: (unset) -> 1");
    }

    #[test]
    fn a_held_lock_refuses_a_second_holder_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path()).unwrap();
        let err = RunLock::acquire(dir.path()).unwrap_err();
        match &err {
            Error::Locked { holder, .. } => assert_eq!(holder, &std::process::id().to_string()),
            e => panic!("{e}"),
        }
        assert!(err.to_string().contains("in use by process"), "{err}");
        drop(first);
        RunLock::acquire(dir.path()).unwrap();
    }
}
