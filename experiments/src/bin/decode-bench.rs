//! `decode-bench`: rollout-engine decoding throughput against batch size. See `decode-bench --help`.

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    apr_experiments::decode_bench::run(apr_experiments::decode_bench::Cli::parse())?;
    Ok(())
}
