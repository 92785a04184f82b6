//! `serve-check`: greedy root calls on a vLLM or SGLang server against the
//! native host decoder. See `serve-check --help`.

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let Some(s) = apr_experiments::serve_check::run(apr_experiments::serve_check::Cli::parse())?
    else {
        return Ok(());
    };
    let failed: Vec<String> = s
        .checks
        .iter()
        .filter_map(|c| {
            c.error
                .as_ref()
                .map(|e| format!("problem {}: {e}", c.problem))
        })
        .collect();
    for f in failed.iter().take(5) {
        eprintln!("{f}");
    }
    let differ: Vec<String> = s
        .checks
        .iter()
        .filter_map(|c| {
            c.first_difference
                .filter(|_| c.error.is_none())
                .map(|d| format!("{}@{d}", c.problem))
        })
        .collect();
    println!(
        "{} calls: {} identical, {} differ (problem@first token: {}), {} failed; native {:.0} tok/s, server {:.0} tok/s, server cached prompt fraction {}",
        s.calls,
        s.identical,
        differ.len(),
        differ.join(" "),
        s.failed,
        s.native_tokens_per_s,
        s.server_tokens_per_s,
        s.server_cached_fraction.map_or("not reported".into(), |f| format!("{f:.3}")),
    );
    let worst = s
        .checks
        .iter()
        .map(|c| c.max_logprob_diff)
        .fold(0.0f32, f32::max);
    println!("largest |log-probability difference| on shared prefixes: {worst:e}");
    Ok(())
}
