//! `eval`: the paper's evaluation of one or more models.

use crate::{Error, Result};
use apr_eval::EvalConfig;
use apr_rollout::Mode;
use clap::Parser;
use std::path::PathBuf;

/// Evaluate trained models as the paper does: greedy accuracy, total and
/// sequential tokens, latency, cumulative accuracy against the context
/// window, budget and temperature sweeps, and for SoS+ models cons@n and
/// pass@n. Writes per-problem JSON Lines and `eval.json` per model under
/// `--out`, the figures and `report.md`.
#[derive(Debug, Parser)]
#[command(name = "eval", version)]
pub struct Cli {
    /// Models as `NAME=DIR:MODE` (MODE `apr` or `single`), e.g.
    /// `apr=runs/countdown-apr-rl/apr-grpo/model:apr`. Repeat for several.
    #[arg(long = "model", required = true)]
    pub models: Vec<String>,
    /// Evaluation settings (TOML, `apr_eval::EvalConfig`; defaults: the
    /// paper's sweeps on the committed validation set).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Replace the settings' problem file.
    #[arg(long)]
    pub problems: Option<PathBuf>,
    /// Use the first N problems.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Greedy run only (no sweeps, no cons@n).
    #[arg(long)]
    pub greedy_only: bool,
    /// Device: `cpu`, or `cuda[:N]` in builds with the `cuda` feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Where the rollouts are generated.
    #[command(flatten)]
    pub generation: crate::generation_args::GenerationArgs,
}

/// One `--model` argument.
fn parse_model(s: &str) -> Result<(String, PathBuf, Mode)> {
    let bad = || Error::Config(format!("--model {s:?}: expected NAME=DIR:MODE"));
    let (name, rest) = s.split_once('=').ok_or_else(bad)?;
    let (dir, mode) = rest.rsplit_once(':').ok_or_else(bad)?;
    let mode = match mode {
        "apr" => Mode::Apr,
        "single" | "sosp" => Mode::Single,
        _ => return Err(bad()),
    };
    Ok((name.to_string(), PathBuf::from(dir), mode))
}

/// Runs `eval`.
pub fn run(cli: Cli) -> Result<()> {
    let mut cfg = match &cli.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|source| Error::Io {
                path: p.display().to_string(),
                source,
            })?;
            toml::from_str::<EvalConfig>(&text)
                .map_err(|e| Error::Config(format!("{}: {e}", p.display())))?
        }
        None => EvalConfig::default(),
    };
    if let Some(p) = &cli.problems {
        cfg.problems = p.clone();
    }
    if cli.limit.is_some() {
        cfg.limit = cli.limit;
    }
    if cli.greedy_only {
        cfg.greedy_only();
    }
    cli.generation.apply(&mut cfg.generation);
    cfg.validate()?;
    let models = cli
        .models
        .iter()
        .map(|m| parse_model(m))
        .collect::<Result<Vec<_>>>()?;
    let problems = apr_countdown::read_problems(&cfg.problems, cfg.limit)?;
    std::fs::create_dir_all(&cli.out).map_err(|source| Error::Io {
        path: cli.out.display().to_string(),
        source,
    })?;
    let toml = toml::to_string_pretty(&cfg).map_err(|e| Error::Config(e.to_string()))?;
    apr_model::checkpoint::write_atomic(&cli.out.join("config.toml"), toml.as_bytes())?;
    let mut evals = Vec::new();
    for (name, dir, mode) in &models {
        let e = crate::device::with_backend!(&cli.device, infer, |B, d| {
            let m: apr_model::Llama<B> = apr_rollout::load_model(dir, d)?;
            apr_eval::evaluate(name, &m, *mode, &problems, &cfg, &cli.out.join(name), true)?
        });
        println!(
            "{name}: greedy accuracy {:.1}%, parse rate {:.1}%, total tokens {:.0}, sequential tokens {:.0}, child threads {:.2}",
            100.0 * e.greedy.accuracy,
            100.0 * e.greedy.parse_rate,
            e.greedy.mean_total_tokens,
            e.greedy.mean_sequential_tokens,
            e.greedy.mean_child_threads
        );
        evals.push(e);
    }
    let md = apr_eval::report::write_report(&evals, &cli.out)?;
    let md = format!(
        "# Evaluation\n\nProblems: `{}` ({} used). Settings: `config.toml` beside this file.\n\n{md}",
        cfg.problems.display(),
        problems.len()
    );
    apr_model::checkpoint::write_atomic(&cli.out.join("report.md"), md.as_bytes())?;
    println!("report: {}", cli.out.join("report.md").display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_arguments() {
        let (n, d, m) = parse_model("a=runs/x:y/model:apr").unwrap();
        assert_eq!(
            (n.as_str(), d, m),
            ("a", PathBuf::from("runs/x:y/model"), Mode::Apr)
        );
        assert_eq!(parse_model("s=m:sosp").unwrap().2, Mode::Single);
        for bad in ["m:apr", "a=m", "a=m:greedy"] {
            assert!(parse_model(bad).is_err(), "{bad}");
        }
    }
}
