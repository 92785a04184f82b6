//! `sample`: a trained model's traces for Countdown problems. See `sample --help`.

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    apr_experiments::sample_cli::run(apr_experiments::sample_cli::Cli::parse())?;
    Ok(())
}
