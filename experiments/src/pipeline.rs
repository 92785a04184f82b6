//! `countdown-apr-rl`: the experiment pipeline, stage by stage, each stage
//! cached (skipped when its output exists) so that a killed run resumes.
//!
//! Present stages: training problems (disjoint from the validation set),
//! APR and SoS+ solver traces, their statistics and a markdown report. The
//! model stages (SFT, GRPO, evaluation) are added by later work.

use crate::error::{Error, Result};
use crate::gen_data::{self, ProblemsArgs};
use crate::jsonl::write_atomic;
use crate::stats::{file_stats, FileStats};
use apr_countdown::{AprRecipe, Recipe, SospRecipe};
use clap::Parser;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The embedded default configuration (a tiny CPU preset).
pub const DEFAULT_CONFIG: &str = include_str!("../configs/countdown-apr-rl.toml");

/// Run the countdown-apr-rl experiment (data stages today; model stages
/// come with the model crates).
#[derive(Debug, Parser)]
#[command(name = "countdown-apr-rl", version)]
pub struct Cli {
    /// Configuration file (default: the embedded tiny preset).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override the output folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Redo every stage even if its output exists.
    #[arg(long)]
    pub force: bool,
}

/// Problem-stage settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProblemsConfig {
    /// Training problems.
    pub count: u64,
    /// Numbers per problem, `4` or `3-6`.
    pub numbers: String,
    /// Smallest target.
    pub min_target: u64,
    /// Largest target.
    pub max_target: u64,
    /// Problem files to stay disjoint from.
    #[serde(default)]
    pub exclude: Vec<PathBuf>,
}

/// The experiment's configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where results go.
    pub out_dir: PathBuf,
    /// Master seed.
    pub seed: u64,
    /// Problems.
    pub problems: ProblemsConfig,
    /// APR trace recipe.
    pub apr: AprRecipe,
    /// SoS+ trace recipe.
    pub sosp: SospRecipe,
}

impl Config {
    /// Parses a TOML configuration.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config> {
        let c: Config =
            toml::from_str(text).map_err(|e| Error::Config(format!("{origin}: {e}")))?;
        c.apr.validate()?;
        c.sosp.validate()?;
        Ok(c)
    }
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
    if let Some(o) = cli.out {
        cfg.out_dir = o;
    }
    let dir = cfg.out_dir.clone();
    write_atomic(
        &dir.join("config.toml"),
        toml::to_string_pretty(&cfg)
            .map_err(|e| Error::Config(e.to_string()))?
            .as_bytes(),
    )?;
    let stage = |name: &str, out: &Path, f: &mut dyn FnMut() -> Result<()>| -> Result<()> {
        if out.exists() && !cli.force {
            eprintln!("[{name}] cached: {}", out.display());
            return Ok(());
        }
        eprintln!("[{name}] running");
        f()
    };
    let problems = dir.join("problems.jsonl");
    stage("problems", &problems, &mut || {
        gen_data::problems(&ProblemsArgs {
            count: cfg.problems.count,
            seed: cfg.seed,
            numbers: cfg.problems.numbers.clone(),
            min_target: cfg.problems.min_target,
            max_target: cfg.problems.max_target,
            min_number: 1,
            max_number: None,
            exclude: cfg.problems.exclude.clone(),
            out: problems.clone(),
            threads: 0,
        })
        .map(|_| ())
    })?;
    let mut reports: Vec<FileStats> = Vec::new();
    let mut loaded = None;
    for (name, recipe) in [
        ("apr", Recipe::Apr(cfg.apr)),
        ("sosp", Recipe::Sosp(cfg.sosp)),
    ] {
        let out = dir.join(format!("{name}-traces.jsonl"));
        stage(&format!("{name} traces"), &out, &mut || {
            if loaded.is_none() {
                loaded = Some(gen_data::read_problems(&problems)?);
            }
            let ps = loaded.as_deref().expect("loaded above");
            gen_data::write_traces(ps, &recipe, cfg.seed, 0, &out).map(|_| ())
        })?;
        reports.push(file_stats(&out)?);
    }
    let mut md = String::from("# countdown-apr-rl report\n\nConfiguration: `config.toml` beside this file.\n\n## Symbolic solver data\n\n```\n");
    for r in &reports {
        md.push_str(&r.report());
    }
    md.push_str("```\n\n## Model stages\n\nThis run stops after the data stages. SFT exists as its own binary (`train-sft`, see docs/model.md) but is not a stage of this experiment yet; the rollout engine exists as its own binary (`rollout`, see docs/rollout.md) but is not a stage either; GRPO and the evaluation are not implemented yet.\n");
    write_atomic(&dir.join("report.md"), md.as_bytes())?;
    for r in &reports {
        eprint!("{}", r.report());
    }
    eprintln!(
        "report: {} (model stages are not run yet: SFT is the separate `train-sft`; GRPO and evaluation are not implemented)",
        dir.join("report.md").display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_config_parses() {
        let c = Config::from_toml(DEFAULT_CONFIG, "embedded").unwrap();
        assert_eq!(c.apr, AprRecipe::default());
        assert_eq!(c.sosp, SospRecipe::default());
        assert!(Config::from_toml("seed = 1", "x").is_err());
    }
}
