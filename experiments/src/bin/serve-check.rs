//! `serve-check`: greedy root calls on a vLLM or SGLang server against the
//! native host decoder, or whole rollouts through the orchestrator on both
//! backends (`--trees`). See `serve-check --help`.

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    use apr_experiments::serve_check::{run, Cli, Outcome};
    let s = match run(Cli::parse())? {
        Outcome::Exported => return Ok(()),
        Outcome::Trees(t) => {
            print_trees(&t);
            return Ok(());
        }
        Outcome::Calls(s) => s,
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

fn print_trees(t: &apr_experiments::serve_trees::TreeSummary) {
    for d in &t.divergences {
        println!(
            "problem {} thread {} call {} token {} (solved native {}, server {}):\n  native: {:?}\n  server: {:?}",
            d.problem, d.thread, d.call, d.token, d.solved.0, d.solved.1, d.native, d.server
        );
    }
    let acc = |s: &apr_experiments::serve_trees::Side| {
        format!(
            "{:.1}% [{:.1}, {:.1}]",
            100.0 * s.accuracy.0,
            100.0 * s.accuracy.1,
            100.0 * s.accuracy.2
        )
    };
    println!(
        "{} problems: {} identical trees; accuracy native {}, {} {}; {} tok/s native, {:.0} tok/s {}",
        t.problems,
        t.identical,
        acc(&t.native),
        t.server.backend,
        acc(&t.server),
        t.native.generated_tokens_per_s.round(),
        t.server.generated_tokens_per_s,
        t.server.backend
    );
    if let Some(d) = &t.accuracy_diff {
        println!(
            "server minus native: {:+.1} points [{:+.1}, {:+.1}]{}",
            100.0 * d.diff,
            100.0 * d.lo,
            100.0 * d.hi,
            if d.significant() {
                ""
            } else {
                " (no significant change)"
            }
        );
    }
    if let Some(c) = &t.cache {
        println!(
            "prefix cache ({} of {} calls reported): {:.1}% of prompt tokens, {:.1}% of the prompts after a join ({} of {} tokens)",
            c.reported_calls,
            t.server.stats.steps,
            100.0 * c.hit_rate(),
            100.0 * c.join_hit_rate(),
            c.join_cached_tokens,
            c.join_prompt_tokens
        );
    }
}
