//! `average-models`: the element-wise mean of saved checkpoints of one
//! architecture (for example a run's last checkpoints), written as a
//! checkpoint of the same layout.

use clap::Parser;
use std::path::PathBuf;

/// Averages the weights of checkpoints in the Hugging Face layout
/// (`model.safetensors`, `config.json`, `tokenizer.json`).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Where the averaged checkpoint is written (replaced whole).
    #[arg(long)]
    out: PathBuf,
    /// The checkpoint directories to average (at least one), all with the
    /// same model config and tokenizer.
    #[arg(required = true)]
    models: Vec<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    apr_model::average::average_dirs(&cli.models, &cli.out)?;
    eprintln!(
        "averaged {} checkpoints -> {}",
        cli.models.len(),
        cli.out.display()
    );
    Ok(())
}
