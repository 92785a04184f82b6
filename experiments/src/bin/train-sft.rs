//! `train-sft`: supervised training of an APR or SoS+ model. See `train-sft --help`.

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    apr_experiments::sft_cli::run(apr_experiments::sft_cli::Cli::parse())?;
    Ok(())
}
