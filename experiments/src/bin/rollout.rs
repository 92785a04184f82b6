//! `rollout`: the batched spawn/join engine on a problem file. See `rollout --help`.

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    apr_experiments::rollout_cli::run(apr_experiments::rollout_cli::Cli::parse())?;
    Ok(())
}
