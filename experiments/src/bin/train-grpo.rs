//! `train-grpo`: GRPO of an APR or SoS+ model. See `train-grpo --help`.

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    apr_experiments::grpo_cli::run(apr_experiments::grpo_cli::Cli::parse())?;
    Ok(())
}
