//! `gen-data`: Countdown problems, APR / SoS+ traces, file statistics and the
//! tokenizer. See `gen-data --help`.

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    apr_experiments::gen_data::run(apr_experiments::gen_data::Cli::parse())?;
    Ok(())
}
