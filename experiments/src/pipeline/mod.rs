//! `countdown-apr-rl`: the whole experiment, stage by stage. Each stage is
//! cached (skipped when its result exists) and the training stages resume
//! from their last checkpoint, so a killed run picks up where it stopped.
//!
//! Stages: validation problems, training problems (disjoint from them),
//! APR and SoS+ solver traces, SFT of an APR and a SoS+ model, GRPO of
//! each, the evaluation of all four, and `report.md`.

mod config;
mod fingerprint;
mod paper;
mod plan;
mod report;
mod timings;

pub use config::Config;

use crate::error::{Error, Result};
use crate::gen_data::{self, ProblemsArgs};
use apr_countdown::Recipe;
use apr_eval::ModelEval;
use apr_model::checkpoint::write_atomic;
use apr_model::{AprBackend, Llama};
use apr_rollout::Mode;
use apr_train::config::{ConditioningMode, DataConfig, OptimConfig};
use apr_train::{GrpoConfig, RunOptions, SftConfig, TraceKind};
use burn::tensor::backend::AutodiffBackend;
use clap::Parser;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The embedded default configuration (the `tiny` CPU preset).
pub const DEFAULT_CONFIG: &str = include_str!("../../configs/countdown-apr-rl.toml");

/// Run the countdown-apr-rl experiment: data, SFT and GRPO of an APR and a
/// SoS+ model, their evaluation, and a markdown report. Every stage is
/// cached in the output folder; a stopped run resumes.
#[derive(Debug, Parser)]
#[command(name = "countdown-apr-rl", version)]
pub struct Cli {
    /// Configuration file (default: the embedded `tiny` preset; others in
    /// experiments/configs/countdown-apr-rl-*.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override the output folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Redo every stage even if its output exists.
    #[arg(long)]
    pub force: bool,
    /// Device: `cpu`, or `cuda[:N]` in builds with the `cuda` feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// Where GRPO's and the evaluation's rollouts are generated (replaces
    /// the config's `[generation]`).
    #[command(flatten)]
    pub generation: crate::generation_args::GenerationArgs,
}

/// Stage timings and results gathered for the report.
#[derive(Default)]
pub(crate) struct Outcome {
    pub data: Vec<crate::stats::FileStats>,
    pub sft: Vec<(String, apr_train::SftSummary)>,
    pub grpo: Vec<(String, apr_train::GrpoSummary)>,
    pub evals: Vec<ModelEval>,
    pub seconds: Vec<(String, f64)>,
}

struct Runner<'a> {
    cli: &'a Cli,
    cfg: Config,
    dir: PathBuf,
    /// Each stage's fingerprint, recorded when it finishes.
    fingerprints: fingerprint::Fingerprints,
}

impl Runner<'_> {
    /// Runs `f` unless `done` exists (and no `--force`); `clear` is removed
    /// first when forced.
    fn stage<T>(
        &self,
        out: &mut Outcome,
        name: &str,
        done: &Path,
        clear: Option<&Path>,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<Option<T>> {
        if done.exists() && !self.cli.force {
            eprintln!("[{name}] cached: {}", done.display());
            return Ok(None);
        }
        if self.cli.force {
            if let Some(c) = clear.filter(|c| c.exists()) {
                let r = if c.is_dir() {
                    std::fs::remove_dir_all(c)
                } else {
                    std::fs::remove_file(c)
                };
                r.map_err(|e| Error::Io {
                    path: c.display().to_string(),
                    source: e,
                })?;
            }
        }
        eprintln!("[{name}] running");
        let t = Instant::now();
        let v = f()?;
        let secs = t.elapsed().as_secs_f64();
        out.seconds.push((name.into(), secs));
        timings::record(&self.dir, name, secs)?;
        if let Some(fp) = self.fingerprints.get(name) {
            fingerprint::record(&self.dir, name, fp)?;
        }
        Ok(Some(v))
    }

    fn problems_args(
        &self,
        count: u64,
        seed: u64,
        exclude: Vec<PathBuf>,
        out: PathBuf,
    ) -> ProblemsArgs {
        let p = &self.cfg.problems;
        ProblemsArgs {
            count,
            seed,
            numbers: p.numbers.clone(),
            min_target: p.min_target,
            max_target: p.max_target,
            min_number: 1,
            max_number: p.max_number,
            exclude,
            out,
            threads: 0,
        }
    }

    fn data(&self, out: &mut Outcome) -> Result<PathBuf> {
        let dir = &self.dir;
        let val = match &self.cfg.val.file {
            Some(f) => f.clone(),
            None => {
                let v = dir.join("val.jsonl");
                let args = self.problems_args(
                    self.cfg.val.count,
                    self.cfg.seed + 1000,
                    self.cfg.problems.exclude.clone(),
                    v.clone(),
                );
                self.stage(out, "validation problems", &v, None, || {
                    gen_data::problems(&args).map(|_| ())
                })?;
                v
            }
        };
        let problems = dir.join("problems.jsonl");
        let mut exclude = self.cfg.problems.exclude.clone();
        exclude.push(val.clone());
        let args = self.problems_args(
            self.cfg.problems.count,
            self.cfg.seed,
            exclude,
            problems.clone(),
        );
        self.stage(out, "problems", &problems, None, || {
            gen_data::problems(&args).map(|_| ())
        })?;
        let mut loaded = None;
        for (name, recipe) in [
            ("apr", Recipe::Apr(self.cfg.apr)),
            ("sosp", Recipe::Sosp(self.cfg.sosp)),
        ] {
            let t = dir.join(format!("{name}-traces.jsonl"));
            self.stage(out, &format!("{name} traces"), &t, None, || {
                if loaded.is_none() {
                    loaded = Some(gen_data::read_problems(&problems)?);
                }
                let ps = loaded.as_deref().unwrap_or_default();
                gen_data::write_traces(ps, &recipe, self.cfg.seed, 0, &t).map(|_| ())
            })?;
            out.data.push(crate::stats::file_stats(&t)?);
        }
        Ok(val)
    }

    /// The SFT runs: the headline APR and SoS+ models, and the
    /// budget-conditioned APR model when configured.
    fn sft_stages(&self) -> Vec<(&'static str, TraceKind, ConditioningMode, OptimConfig)> {
        let s = &self.cfg.sft;
        let mut v = vec![
            ("apr", TraceKind::Apr, s.conditioning, s.apr.clone()),
            ("sosp", TraceKind::Sosp, s.conditioning, s.sosp.clone()),
        ];
        if let Some(o) = &s.apr_cond {
            v.push((
                "apr-cond",
                TraceKind::Apr,
                ConditioningMode::Budget,
                o.clone(),
            ));
        }
        v
    }

    fn sft_config(
        &self,
        name: &str,
        kind: TraceKind,
        conditioning: ConditioningMode,
        optim: OptimConfig,
    ) -> SftConfig {
        let traces = kind.mode().name();
        SftConfig {
            out: self.dir.join(format!("{name}-sft")),
            model: self.cfg.sft.model.clone(),
            data: DataConfig {
                train: vec![self.dir.join(format!("{traces}-traces.jsonl"))],
                kind,
                conditioning,
                val_fraction: self.cfg.sft.val_fraction,
                val_max_sequences: self.cfg.sft.val_max_sequences,
                max_problems: None,
                solved_only: false,
                token_budget_bin: 512,
                loss_on_inserted: false,
                continuation_weight: match kind {
                    TraceKind::Apr => self.cfg.sft.apr_continuation_weight,
                    TraceKind::Sosp => 1.0,
                },
            },
            optim,
        }
    }

    /// The model the SFT stage `{stem}-sft` hands on (its final weights,
    /// or the mean of its last checkpoints with `average_last`).
    fn sft_model(&self, stem: &str) -> PathBuf {
        let out = self.dir.join(format!("{stem}-sft"));
        match self.sft_stages().into_iter().find(|s| s.0 == stem) {
            Some((_, _, _, optim)) => apr_train::sft::handed_on_model_dir(&out, &optim),
            None => apr_train::sft::model_dir(&out),
        }
    }

    fn grpo_config(&self, name: &str, val: &Path) -> GrpoConfig {
        let g = &self.cfg.grpo;
        let m = if name == "apr" { &g.apr } else { &g.sosp };
        GrpoConfig {
            out: self.dir.join(format!("{name}-grpo")),
            init: self.sft_model(name),
            problems: self.dir.join("problems.jsonl"),
            val_problems: (g.val_limit > 0).then(|| val.to_path_buf()),
            val_limit: Some(g.val_limit),
            slots: g.slots,
            generation: self.generation(&format!("{name}-grpo")),
            rollout: m.rollout.clone(),
            optim: m.optim.clone(),
        }
    }

    /// Where rollouts run: the config's `[generation]` with the command
    /// line's switches; on servers, weights go to `<stage>/server-weights`
    /// unless a directory is given.
    fn generation(&self, stage: &str) -> apr_rollout::GenerationConfig {
        let mut g = self.cfg.generation.clone();
        self.cli.generation.apply(&mut g);
        if g.backend != apr_rollout::BackendKind::Native && g.weights_dir.is_none() {
            g.weights_dir = Some(self.dir.join(stage).join("server-weights"));
        }
        g
    }

    /// The evaluation settings of model `name`: an unconditioned headline
    /// model runs without a budget prefix and gets no budget sweep; models
    /// not in `eval.sweep` get the greedy run only.
    fn eval_settings(&self, settings: &apr_eval::EvalConfig, name: &str) -> apr_eval::EvalConfig {
        let mut s = settings.clone();
        s.generation = self.generation(&format!("eval-weights/{name}"));
        let conditioned =
            name == "apr-cond-sft" || self.cfg.sft.conditioning == ConditioningMode::Budget;
        if !conditioned {
            s.apr_budget = None;
            s.sosp_budget = None;
            s.apr_budgets.clear();
            s.sosp_budgets.clear();
        }
        if !self.cfg.eval.sweep.iter().any(|m| m == name) {
            s.greedy_only();
        }
        s
    }

    fn models<BT>(&self, out: &mut Outcome, val: &Path, device: &BT::Device) -> Result<()>
    where
        BT: AutodiffBackend + AprBackend,
        BT::InnerBackend: AprBackend,
    {
        let opts = RunOptions {
            progress: !self.cli.quiet,
            stop_after: None,
        };
        for (stem, kind, conditioning, optim) in self.sft_stages() {
            // Every stage's settings were checked before any work
            // (`validate_all`).
            let c = self.sft_config(stem, kind, conditioning, optim);
            let name = format!("{stem}-sft");
            let done = c.out.join("summary.json");
            let s = self.stage(out, &name, &done, Some(&c.out), || {
                Ok(apr_train::train::<BT>(&c, device, &opts)?)
            })?;
            out.sft.push((
                name,
                match s {
                    Some(s) => s,
                    // A summary that does not read (older versions wrote a
                    // null loss on a rerun) is mended by the trainer, which
                    // otherwise returns the finished run's untouched.
                    None => match read_json(&done) {
                        Ok(s) => s,
                        Err(_) => apr_train::train::<BT>(&c, device, &opts)?,
                    },
                },
            ));
        }
        for name in ["apr", "sosp"] {
            let c = self.grpo_config(name, val);
            let done = c.out.join("summary.json");
            let stage = format!("{name}-grpo");
            let s = self.stage(out, &stage, &done, Some(&c.out), || {
                Ok(apr_train::train_grpo::<BT>(&c, device, &opts)?)
            })?;
            out.grpo.push((
                stage,
                match s {
                    Some(s) => s,
                    None => read_json(&done)?,
                },
            ));
        }
        let mut settings = self.cfg.eval.settings.clone();
        settings.problems = val.to_path_buf();
        let problems = apr_countdown::read_problems(&settings.problems, settings.limit)?;
        let grpo_model = |stem: &str| apr_train::run_loop::model_dir(&self.dir.join(stem));
        let mut models = vec![
            ("apr-sft", Mode::Apr, self.sft_model("apr")),
            ("apr-grpo", Mode::Apr, grpo_model("apr-grpo")),
            ("sosp-sft", Mode::Single, self.sft_model("sosp")),
            ("sosp-grpo", Mode::Single, grpo_model("sosp-grpo")),
        ];
        if self.cfg.sft.apr_cond.is_some() {
            models.push(("apr-cond-sft", Mode::Apr, self.sft_model("apr-cond")));
        }
        for (name, mode, model_dir) in models {
            let edir = self.dir.join("eval").join(name);
            let done = edir.join("eval.json");
            let s = self.eval_settings(&settings, name);
            let e = self.stage(out, &format!("eval {name}"), &done, Some(&edir), || {
                let model: Llama<BT::InnerBackend> = apr_rollout::load_model(&model_dir, device)?;
                Ok(apr_eval::evaluate(
                    name,
                    &model,
                    mode,
                    &problems,
                    &s,
                    &edir,
                    !self.cli.quiet,
                )?)
            })?;
            out.evals.push(match e {
                Some(e) => e,
                None => read_json(&done)?,
            });
        }
        Ok(())
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    serde_json::from_slice(&text).map_err(|e| Error::Record {
        path: path.display().to_string(),
        record: 0,
        message: e.to_string(),
    })
}

/// Runs the pipeline from parsed arguments.
pub fn run(cli: Cli) -> Result<()> {
    let (text, origin) = match &cli.config {
        Some(p) => (
            std::fs::read_to_string(p).map_err(|source| Error::Io {
                path: p.display().to_string(),
                source,
            })?,
            p.display().to_string(),
        ),
        None => (DEFAULT_CONFIG.to_string(), "embedded default".to_string()),
    };
    let mut cfg = Config::from_toml(&text, &origin)?;
    if let Some(o) = &cli.out {
        cfg.out_dir = o.clone();
    }
    let dir = cfg.out_dir.clone();
    let mut runner = Runner {
        cli: &cli,
        cfg,
        dir: dir.clone(),
        fingerprints: Default::default(),
    };
    // Everything is checked before any work: every stage's settings, and
    // the finished stages' fingerprints against this config.
    runner.validate_all(&origin)?;
    let _lock = apr_train::run_dir::RunLock::acquire(&dir)?;
    let stages = runner.plan()?;
    runner.fingerprints = plan::fingerprints(&stages);
    if !cli.force {
        if !fingerprint::recorded(&dir) {
            // A folder from before fingerprints: its recorded config says
            // what its finished stages were made under.
            if let Some(old) = plan::recorded_fingerprints(&cli, &dir) {
                fingerprint::record_all(&dir, &old)?;
            }
        }
        fingerprint::check(&dir, &runner.fingerprints, &|s| plan::finished(&stages, s))?;
    }
    write_atomic(
        &dir.join("config.toml"),
        toml::to_string_pretty(&runner.cfg)
            .map_err(|e| Error::Config(e.to_string()))?
            .as_bytes(),
    )?;
    let t0 = Instant::now();
    let mut out = Outcome::default();
    let val = runner.data(&mut out)?;
    crate::device::with_backend!(&cli.device, train, |B, d| {
        runner.models::<B>(&mut out, &val, d)?
    });
    let md = report::markdown(&runner.cfg, &out, &dir, t0.elapsed().as_secs_f64())?;
    write_atomic(&dir.join("report.md"), md.as_bytes())?;
    for e in &out.evals {
        eprintln!(
            "{:10} greedy accuracy {:5.1}%  total tokens {:6.0}  sequential {:6.0}  child threads {:.2}",
            e.name,
            100.0 * e.greedy.accuracy,
            e.greedy.mean_total_tokens,
            e.greedy.mean_sequential_tokens,
            e.greedy.mean_child_threads
        );
    }
    eprintln!("report: {}", dir.join("report.md").display());
    Ok(())
}

#[cfg(test)]
mod tests;
