//! The experiment's `report.md`.

use super::{Config, Outcome};
use crate::error::Result;
use std::fmt::Write;
use std::path::Path;

fn acc(out: &Outcome, name: &str) -> Option<f64> {
    out.evals
        .iter()
        .find(|e| e.name == name)
        .map(|e| e.greedy.accuracy)
}

/// The report of a run.
pub(crate) fn markdown(cfg: &Config, out: &Outcome, dir: &Path, seconds: f64) -> Result<String> {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# countdown-apr-rl report (preset `{}`)\n\nConfiguration: `config.toml` beside this file. \
         Stages run by this invocation took {seconds:.0} s (cached stages are not re-timed).\n",
        cfg.preset
    );
    if !out.seconds.is_empty() {
        let _ = writeln!(md, "| stage | seconds |\n|---|---|");
        for (s, t) in &out.seconds {
            let _ = writeln!(md, "| {s} | {t:.0} |");
        }
    }
    let _ = writeln!(md, "\n## Outcome\n");
    for (mode, label) in [("apr", "APR"), ("sosp", "SoS+")] {
        if let (Some(a), Some(b)) = (
            acc(out, &format!("{mode}-sft")),
            acc(out, &format!("{mode}-grpo")),
        ) {
            let d = 100.0 * (b - a);
            let verb = if d > 0.0 {
                "raised"
            } else if d == 0.0 {
                "did not change"
            } else {
                "lowered"
            };
            let _ = writeln!(
                md,
                "- {label}: GRPO {verb} greedy validation accuracy: {:.1}% after SFT, {:.1}% after GRPO ({d:+.1} points).",
                100.0 * a,
                100.0 * b
            );
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
