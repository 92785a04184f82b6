//! `train-sft`: supervised training of an APR or SoS+ model from a TOML config.

use crate::Result;
use apr_train::{RunOptions, SftConfig};
use clap::Parser;
use std::path::PathBuf;

/// Train a model on solver traces (SFT), resuming from the run directory's
/// last checkpoint when there is one. Writes `metrics.jsonl`, `loss.svg`,
/// `config.toml`, `summary.json`, the training state (`state/`) and the
/// final model in the Hugging Face Llama layout (`model/`).
#[derive(Debug, Parser)]
#[command(name = "train-sft", version)]
pub struct Cli {
    /// The run's TOML config (see experiments/configs/sft-*.toml).
    #[arg(long)]
    pub config: PathBuf,
    /// Replace the config's output directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace the config's trace files.
    #[arg(long, num_args = 1..)]
    pub train: Option<Vec<PathBuf>>,
    /// Replace the config's number of optimiser steps.
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Replace the config's time limit, in minutes.
    #[arg(long)]
    pub time_limit_minutes: Option<f64>,
    /// Device: `cpu`, or `cuda[:N]` in builds with the `cuda` feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Float type of weights and activations: `f32` or `bf16` (burn's
    /// per-device default dtype; checkpoints stay f32 on disk).
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Start over: remove the run directory's state, metrics, summary,
    /// model and recorded config first (a resume under another config is
    /// refused otherwise).
    #[arg(long)]
    pub force: bool,
    /// Write the token sequences of the first `max_steps * accum_steps`
    /// micro-batches to this JSON file and exit (for the PyTorch baseline,
    /// benches/baselines/).
    #[arg(long)]
    pub dump_batches: Option<PathBuf>,
}

/// Runs `train-sft`.
pub fn run(cli: Cli) -> Result<()> {
    let mut cfg = SftConfig::from_file(&cli.config)?;
    if let Some(o) = cli.out {
        cfg.out = o;
    }
    if let Some(t) = cli.train {
        cfg.data.train = t;
    }
    if let Some(n) = cli.max_steps {
        cfg.optim.max_steps = n;
    }
    if let Some(t) = cli.time_limit_minutes {
        cfg.optim.time_limit_minutes = Some(t);
    }
    cfg.validate()?;
    if let Some(path) = &cli.dump_batches {
        let n = cfg.optim.max_steps * cfg.optim.accum_steps;
        let batches = apr_train::sft::first_batches(&cfg, n)?;
        let model = cfg.model_config()?;
        let v = serde_json::json!({
            "model": model, "batches": batches,
            "lr": cfg.optim.lr, "weight_decay": cfg.optim.weight_decay,
            "beta1": cfg.optim.beta1, "beta2": cfg.optim.beta2, "eps": cfg.optim.eps,
            "grad_clip": cfg.optim.grad_clip,
        });
        let bytes = serde_json::to_vec(&v).map_err(|e| crate::Error::Config(e.to_string()))?;
        apr_model::checkpoint::write_atomic(path, &bytes)?;
        println!("{n} batches -> {}", path.display());
        return Ok(());
    }
    if cli.force {
        apr_train::run_dir::clear(&cfg.out)?;
    }
    let opts = RunOptions {
        progress: !cli.quiet,
        stop_after: None,
    };
    let summary = crate::device::with_backend!(&cli.device, train, |B, d| {
        crate::device::set_dtype::<B>(d, &cli.dtype)?;
        apr_train::train::<B>(&cfg, d, &opts)?
    });
    println!(
        "{} steps, train loss {:.4}, validation loss {}, {:.0} target tokens/s{}; model in {}",
        summary.steps,
        summary.final_train_loss,
        summary
            .final_val_loss
            .map_or("-".into(), |v| format!("{v:.4}")),
        summary.tokens_per_second,
        if summary.stopped_on_time {
            " (stopped on the time limit)"
        } else {
            ""
        },
        summary.model_dir.display()
    );
    Ok(())
}
