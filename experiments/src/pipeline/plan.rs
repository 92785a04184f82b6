//! The pipeline's stages known before any work: each stage's name, the
//! file whose existence marks it finished, and its fingerprint; and the
//! check of every stage's settings, so a bad `[sft.*]` or `[grpo.*]`
//! section fails at once rather than an hour in.

use super::fingerprint::{without, Fingerprints};
use super::{Cli, Config, Runner};
use crate::error::{Error, Result};
use serde::Serialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// One stage of the run.
pub(crate) struct Planned {
    /// Its name (as printed, and the key of `stages.json`).
    pub name: String,
    /// The file that exists once it finished.
    pub done: PathBuf,
    /// Its fingerprint.
    pub fingerprint: Value,
}

fn value<T: Serialize>(v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| Error::Config(e.to_string()))
}

impl Runner<'_> {
    /// The validation set's path.
    pub(crate) fn val_path(&self) -> PathBuf {
        match &self.cfg.val.file {
            Some(f) => f.clone(),
            None => self.dir.join("val.jsonl"),
        }
    }

    /// Checks every stage's settings as the stage will get them, naming
    /// the config section of a bad one.
    pub(crate) fn validate_all(&self, origin: &str) -> Result<()> {
        let ctx = |section: String| {
            move |e: apr_train::Error| Error::Config(format!("{origin}: [{section}]: {e}"))
        };
        for (stem, kind, cond, optim) in self.sft_stages() {
            let c = self.sft_config(stem, kind, cond, optim);
            let section = format!("sft.{}", stem.replace('-', "_"));
            c.validate().map_err(ctx(section.clone()))?;
            c.model_config().map_err(ctx("sft.model".into()))?;
        }
        let val = self.val_path();
        for name in ["apr", "sosp"] {
            self.grpo_config(name, &val)
                .validate()
                .map_err(ctx(format!("grpo.{name}")))?;
        }
        Ok(())
    }

    /// Every stage in order, with its fingerprint.
    pub(crate) fn plan(&self) -> Result<Vec<Planned>> {
        let c = &self.cfg;
        let dir = &self.dir;
        let mut out = Vec::new();
        let mut add = |name: String, done: PathBuf, fingerprint: Value| {
            out.push(Planned {
                name,
                done,
                fingerprint: fingerprint.clone(),
            });
            fingerprint
        };
        let val = match &c.val.file {
            Some(f) => json!({ "file": f }),
            None => add(
                "validation problems".into(),
                dir.join("val.jsonl"),
                json!({
                    "seed": c.seed,
                    "count": c.val.count,
                    "problems": without(value(&c.problems)?, &["count"]),
                }),
            ),
        };
        let problems = add(
            "problems".into(),
            dir.join("problems.jsonl"),
            json!({ "seed": c.seed, "problems": value(&c.problems)?, "val": val }),
        );
        let apr = add(
            "apr traces".into(),
            dir.join("apr-traces.jsonl"),
            json!({ "seed": c.seed, "recipe": value(&c.apr)?, "problems": problems }),
        );
        let sosp = add(
            "sosp traces".into(),
            dir.join("sosp-traces.jsonl"),
            json!({ "seed": c.seed, "recipe": value(&c.sosp)?, "problems": problems }),
        );
        let mut models = Vec::new();
        for (stem, kind, cond, optim) in self.sft_stages() {
            let s = self.sft_config(stem, kind, cond, optim);
            let traces = if kind == apr_train::TraceKind::Apr {
                &apr
            } else {
                &sosp
            };
            let name = format!("{stem}-sft");
            let fp = add(
                name.clone(),
                s.out.join("summary.json"),
                json!({ "sft": without(value(&s)?, &["out", "data.train"]), "traces": traces }),
            );
            models.push((name, fp));
        }
        let val_path = self.val_path();
        for name in ["apr", "sosp"] {
            let g = self.grpo_config(name, &val_path);
            let sft = models
                .iter()
                .find(|m| m.0 == format!("{name}-sft"))
                .map(|m| m.1.clone());
            let used_val = g.val_problems.is_some().then(|| val.clone());
            let stage = format!("{name}-grpo");
            let fp = add(
                stage.clone(),
                g.out.join("summary.json"),
                json!({
                    "grpo": without(value(&g)?, &["out", "init", "problems", "val_problems"]),
                    "sft": sft, "problems": problems, "val": used_val,
                }),
            );
            models.push((stage, fp));
        }
        for (name, model) in &models {
            let s = self.eval_settings(&c.eval.settings, name);
            add(
                format!("eval {name}"),
                dir.join("eval").join(name).join("eval.json"),
                json!({
                    "eval": without(value(&s)?, &["problems"]),
                    "model": model, "val": val,
                }),
            );
        }
        Ok(out)
    }
}

/// The plan's fingerprints by stage.
pub(crate) fn fingerprints(plan: &[Planned]) -> Fingerprints {
    plan.iter()
        .map(|p| (p.name.clone(), p.fingerprint.clone()))
        .collect()
}

/// Whether the stage `name` of the plan has finished.
pub(crate) fn finished(plan: &[Planned], name: &str) -> bool {
    plan.iter().any(|p| p.name == name && p.done.exists())
}

/// The fingerprints of the config recorded in `dir` (`None` when there is
/// none or it no longer reads).
pub(crate) fn recorded_fingerprints(cli: &Cli, dir: &Path) -> Option<Fingerprints> {
    let path = dir.join("config.toml");
    let text = std::fs::read_to_string(&path).ok()?;
    let mut cfg = Config::from_toml(&text, &path.display().to_string()).ok()?;
    cfg.out_dir = dir.to_path_buf();
    let old = Runner {
        cli,
        cfg,
        dir: dir.to_path_buf(),
        fingerprints: Default::default(),
    };
    old.plan().ok().map(|p| fingerprints(&p))
}
