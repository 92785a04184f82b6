//! `eval`: the paper's evaluation of trained models. See `eval --help`.

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    apr_experiments::eval_cli::run(apr_experiments::eval_cli::Cli::parse())?;
    Ok(())
}
