//! The experiment's `report.md`.

use super::paper::{greedy_solved, GreedySolved};
use super::{Config, Outcome};
use crate::error::Result;
use std::fmt::Write;
use std::path::Path;

/// The context window of the trained models (`apr-sft/model/config.json`,
/// Hugging Face `max_position_embeddings`).
fn model_window(dir: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(dir.join("apr-sft/model/config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("max_position_embeddings")?
        .as_u64()
        .map(|w| w as usize)
}

/// `b` against `a` on the same problems: the difference, its paired
/// interval, and whether it is a significant change.
fn compare(greedy: &GreedySolved, a: &str, b: &str, what: &str) -> Option<String> {
    let d = apr_eval::metrics::paired_bootstrap(greedy.get(a)?, greedy.get(b)?, 2000, 0)?;
    let verdict = match (d.significant(), d.diff > 0.0) {
        (false, _) => "no significant change",
        (true, true) => "significantly higher",
        (true, false) => "significantly lower",
    };
    Some(format!(
        "{what} (`{b}` minus `{a}`): {:+.1} points (95% interval {:+.1} to {:+.1}): {verdict}.",
        100.0 * d.diff,
        100.0 * d.lo,
        100.0 * d.hi
    ))
}

/// The report of a run.
pub(crate) fn markdown(cfg: &Config, out: &Outcome, dir: &Path, seconds: f64) -> Result<String> {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# countdown-apr-rl report (preset `{}`)\n\nConfiguration: `config.toml` beside this file. \
         This invocation ran {} stage(s) in {seconds:.0} s.\n",
        cfg.preset,
        out.seconds.len()
    );
    let recorded = super::timings::read(dir)?;
    if !recorded.is_empty() {
        let _ = writeln!(
            md,
            "Seconds each stage took when it ran (`stages.json`; every stage ends on its step \
             count, so a rerun on the same machine gives the same numbers):\n\n| stage | seconds |\n|---|---|"
        );
        for (s, t) in &recorded {
            let _ = writeln!(md, "| {s} | {t:.0} |");
        }
        let total: f64 = recorded.iter().map(|r| r.1).sum();
        let _ = writeln!(
            md,
            "| **all stages** | **{total:.0}** ({:.1} min) |",
            total / 60.0
        );
    }
    let greedy = greedy_solved(dir, &out.evals);
    if let Some(p) = super::paper::section(&out.evals, &greedy, dir, model_window(dir)) {
        let _ = writeln!(md, "\n{p}");
    }
    let _ = writeln!(
        md,
        "\n## Outcome\n\nGreedy validation accuracy, scored by the official checker's rules \
         (`apr_countdown::score`), with 95% Wilson intervals; differences between two models on \
         the same problems with 95% paired-bootstrap intervals (2,000 resamples, seed 0). A \
         difference whose interval includes 0 is no significant change.\n"
    );
    for e in &out.evals {
        let n = e.problems;
        let k = (e.greedy.accuracy * n as f64).round() as usize;
        let (lo, hi) = apr_eval::metrics::wilson_interval(k, n);
        let _ = writeln!(
            md,
            "- {}: {:.1}% ({k}/{n}; 95% interval {:.1}-{:.1}%)",
            e.name,
            100.0 * e.greedy.accuracy,
            100.0 * lo,
            100.0 * hi
        );
    }
    let _ = writeln!(md);
    for (a, b, what) in [
        ("apr-sft", "apr-grpo", "APR, GRPO against SFT"),
        ("sosp-sft", "sosp-grpo", "SoS+, GRPO against SFT"),
        ("sosp-sft", "apr-sft", "after SFT, APR against SoS+"),
        ("sosp-grpo", "apr-grpo", "after GRPO, APR against SoS+"),
    ] {
        if let Some(line) = compare(&greedy, a, b, what) {
            let _ = writeln!(md, "- {line}");
        }
    }
    let _ = writeln!(md, "\n## Symbolic solver data\n\n```");
    for r in &out.data {
        md.push_str(&r.report());
    }
    let _ = writeln!(md, "```\n\n## SFT\n\n| model | steps | train loss | validation loss | target tokens/s | stopped on time |\n|---|---|---|---|---|---|");
    for (n, s) in &out.sft {
        let _ = writeln!(
            md,
            "| {n} | {} | {:.4} | {} | {:.0} | {} |",
            s.steps,
            s.final_train_loss,
            s.final_val_loss.map_or("-".into(), |v| format!("{v:.4}")),
            s.tokens_per_second,
            s.stopped_on_time
        );
    }
    for (n, _) in &out.sft {
        let _ = writeln!(md, "\n![{n} loss]({n}/loss.svg)");
    }
    let _ = writeln!(md, "\n## GRPO\n\n| model | steps | reward (first step) | reward (last step) | seconds | stopped on time |\n|---|---|---|---|---|---|");
    for (n, s) in &out.grpo {
        let _ = writeln!(
            md,
            "| {n} | {} | {:.3} | {:.3} | {:.0} | {} |",
            s.steps, s.first_reward, s.last_reward, s.seconds, s.stopped_on_time
        );
    }
    for (n, _) in &out.grpo {
        let _ = writeln!(
            md,
            "\n![{n} reward]({n}/reward.svg)\n![{n} KL and clipping]({n}/policy.svg)"
        );
    }
    let _ = writeln!(
        md,
        "\n## Evaluation: APR and SoS+ side by side\n\nGreedy unless stated, on the validation set \
         (`eval/<model>/*.jsonl` hold every problem's result). Latency is per problem inside one \
         batched engine run on this run's device.\n"
    );
    md.push_str(&apr_eval::report::write_report(&out.evals, dir)?);
    Ok(md)
}
