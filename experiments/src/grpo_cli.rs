//! `train-grpo`: GRPO of an SFT model on rollouts of the batched engine.

use crate::Result;
use apr_train::{GrpoConfig, RunOptions};
use clap::Parser;
use std::path::PathBuf;

/// Reinforcement learning (GRPO) of an APR or SoS+ model: each step samples
/// a group of rollouts per problem with the batched engine, rewards the
/// verified answers, and takes PPO-clip steps with a k3 KL to the initial
/// model. Resumes from the run directory's last checkpoint. Writes
/// `metrics.jsonl`, `reward.svg`, `policy.svg`, `threads.svg`,
/// `config.toml`, `summary.json`, the training state (`state/`) and the
/// model in the Hugging Face Llama layout (`model/`).
#[derive(Debug, Parser)]
#[command(name = "train-grpo", version)]
pub struct Cli {
    /// The run's TOML config (see experiments/configs/grpo-*.toml).
    #[arg(long)]
    pub config: PathBuf,
    /// Replace the config's output directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace the config's initial model.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Replace the config's number of GRPO steps.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Replace the config's time limit, in minutes.
    #[arg(long)]
    pub time_limit_minutes: Option<f64>,
    /// Device: `cpu`, or `cuda[:N]` in builds with the `cuda` feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Start over: remove the run directory's state, metrics, summary,
    /// model and recorded config first (a resume under another config is
    /// refused otherwise).
    #[arg(long)]
    pub force: bool,
    /// Where the rollouts are generated (servers load the policy's weights
    /// after every step).
    #[command(flatten)]
    pub generation: crate::generation_args::GenerationArgs,
}

/// Runs `train-grpo`.
pub fn run(cli: Cli) -> Result<()> {
    let mut cfg = GrpoConfig::from_file(&cli.config)?;
    if let Some(o) = cli.out {
        cfg.out = o;
    }
    if let Some(i) = cli.init {
        cfg.init = i;
    }
    if let Some(n) = cli.steps {
        cfg.optim.steps = n;
    }
    if let Some(t) = cli.time_limit_minutes {
        cfg.optim.time_limit_minutes = Some(t);
    }
    cli.generation.apply(&mut cfg.generation);
    cfg.validate()?;
    if cli.force {
        apr_train::run_dir::clear(&cfg.out)?;
    }
    let opts = RunOptions {
        progress: !cli.quiet,
        stop_after: None,
    };
    let s = crate::device::with_backend!(&cli.device, train, |B, d| {
        apr_train::train_grpo::<B>(&cfg, d, &opts)?
    });
    let pct = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.1}%", 100.0 * v));
    println!(
        "{} GRPO steps in {:.0} s{}: reward {:.3} -> {:.3}, greedy validation accuracy {} -> {}; model in {}",
        s.steps,
        s.seconds,
        if s.stopped_on_time { " (stopped on the time limit)" } else { "" },
        s.first_reward,
        s.last_reward,
        pct(s.initial_val_accuracy),
        pct(s.final_val_accuracy),
        s.model_dir.display()
    );
    Ok(())
}
