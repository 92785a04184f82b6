//! `countdown-apr-rl`: the experiment pipeline. See `--help`.

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    apr_experiments::pipeline::run(apr_experiments::pipeline::Cli::parse())?;
    Ok(())
}
