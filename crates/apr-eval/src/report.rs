//! Figures in the style of the paper's (accuracy against total tokens,
//! against the context window, against sequential tokens and latency) and
//! a markdown report over several evaluated models.

use crate::error::Result;
use crate::metrics::wilson_of_share;
use crate::run::{ModelEval, SweepPoint};
use apr_plot::{line_plot, Series};
use apr_rollout::Mode;
use std::fmt::Write;
use std::path::Path;

fn sorted(mut p: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    p.sort_by(|a, b| a.0.total_cmp(&b.0));
    p
}

/// A series of accuracies over `n` problems each, with their 95% Wilson
/// intervals as error bars.
fn with_intervals(name: String, points: Vec<(f64, f64)>, n: usize) -> Series {
    let points = sorted(points);
    let errors = points.iter().map(|&(_, a)| wilson_of_share(a, n)).collect();
    Series::new(name, points).with_errors(errors)
}

/// Each model's budget sweep (or its greedy point when it has none).
fn sweep_series(evals: &[ModelEval], x: fn(&SweepPoint) -> f64) -> Vec<Series> {
    let mut out = Vec::new();
    for e in evals {
        let mut pts: Vec<(f64, f64)> = e.budgets.iter().map(|p| (x(p), p.accuracy)).collect();
        let name = if pts.is_empty() {
            let p = SweepPoint::of(0.0, &e.greedy);
            pts.push((x(&p), p.accuracy));
            format!("{} (greedy)", e.name)
        } else {
            format!("{} (budgets)", e.name)
        };
        out.push(with_intervals(name, pts, e.problems));
    }
    out
}

/// The figures, as (file name, SVG). Every accuracy carries its 95%
/// Wilson interval as an error bar.
pub fn figures(evals: &[ModelEval]) -> Vec<(String, String)> {
    let mut tokens = sweep_series(evals, |p| p.total_tokens);
    for e in evals.iter().filter(|e| !e.at_n.is_empty()) {
        tokens.push(with_intervals(
            format!("{} cons@n", e.name),
            e.at_n.iter().map(|a| (a.total_tokens, a.cons)).collect(),
            e.problems,
        ));
    }
    let context: Vec<Series> = evals
        .iter()
        .map(|e| {
            let pts = e.context.iter().map(|&(w, a)| (w as f64, a)).collect();
            with_intervals(e.name.clone(), pts, e.problems)
        })
        .collect();
    vec![
        (
            "accuracy-total-tokens.svg".into(),
            line_plot(
                "Accuracy against total tokens (cf. paper fig. 4a)",
                "mean total tokens per problem",
                "accuracy",
                &tokens,
            ),
        ),
        (
            "accuracy-context.svg".into(),
            line_plot(
                "Cumulative accuracy against context window (cf. fig. 4b)",
                "context window (tokens)",
                "accuracy",
                &context,
            ),
        ),
        (
            "accuracy-sequential-tokens.svg".into(),
            line_plot(
                "Accuracy against sequential tokens (cf. fig. 5)",
                "mean sequential tokens per problem",
                "accuracy",
                &sweep_series(evals, |p| p.sequential_tokens),
            ),
        ),
        (
            "accuracy-latency.svg".into(),
            line_plot(
                "Accuracy against latency (cf. fig. 6; batched engine)",
                "mean latency per problem (s)",
                "accuracy",
                &sweep_series(evals, |p| p.latency_s),
            ),
        ),
    ]
}

fn pct(x: f64) -> String {
    format!("{:.1}", 100.0 * x)
}

/// An accuracy over `n` problems with its 95% Wilson interval:
/// `49.3 (46.2-52.4)`.
fn pct_ci(x: f64, n: usize) -> String {
    let (lo, hi) = wilson_of_share(x, n);
    format!("{} ({}-{})", pct(x), pct(lo), pct(hi))
}

/// Finish reasons over all threads (`eos 310, spawn_limit 2`): a limit
/// that ended threads (and so zeroed their problems' scores) shows here.
fn finish_counts(r: &std::collections::BTreeMap<String, usize>) -> String {
    let v: Vec<String> = r.iter().map(|(k, n)| format!("{k} {n}")).collect();
    v.join(", ")
}

/// The markdown report's evaluation section (figures referenced by file
/// name, relative to `dir`), and the figures written into `dir`.
pub fn write_report(evals: &[ModelEval], dir: &Path) -> Result<String> {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| model | mode | problems | greedy accuracy % (95% interval) | parse % | total tokens | sequential tokens | child threads | latency s | threads ended by |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    for e in evals {
        let g = &e.greedy;
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {} |",
            e.name,
            match e.mode {
                Mode::Apr => "APR",
                Mode::Single => "SoS+",
            },
            e.problems,
            pct_ci(g.accuracy, e.problems),
            pct(g.parse_rate),
            g.mean_total_tokens,
            g.mean_sequential_tokens,
            g.mean_child_threads,
            g.mean_latency_s,
            finish_counts(&g.finish_reasons)
        );
    }
    let windows: Vec<usize> = evals
        .first()
        .map(|e| e.context.iter().map(|c| c.0).collect())
        .unwrap_or_default();
    if !windows.is_empty() {
        let _ = writeln!(
            md,
            "\n### Cumulative accuracy (%, 95% interval) at context window\n"
        );
        let head: Vec<String> = windows.iter().map(|w| w.to_string()).collect();
        let _ = writeln!(
            md,
            "| model | {} |\n|---|{}",
            head.join(" | "),
            "---|".repeat(windows.len())
        );
        for e in evals {
            let v: Vec<String> = e.context.iter().map(|c| pct_ci(c.1, e.problems)).collect();
            let _ = writeln!(md, "| {} | {} |", e.name, v.join(" | "));
        }
    }
    for e in evals.iter().filter(|e| !e.budgets.is_empty()) {
        let what = match e.mode {
            Mode::Apr => "child-thread budget (`Sub Call Budget`)",
            Mode::Single => "token budget (`Token Budget`)",
        };
        let _ = writeln!(
            md,
            "\n### {}: greedy accuracy against the {what}\n\n| budget | accuracy % (95% interval) | total tokens | sequential tokens | child threads | latency s |\n|---|---|---|---|---|---|",
            e.name
        );
        for p in &e.budgets {
            let _ = writeln!(
                md,
                "| {} | {} | {:.0} | {:.0} | {:.2} | {:.2} |",
                p.value,
                pct_ci(p.accuracy, e.problems),
                p.total_tokens,
                p.sequential_tokens,
                p.child_threads,
                p.latency_s
            );
        }
    }
    if evals.iter().any(|e| !e.temperatures.is_empty()) {
        let _ = writeln!(md, "\n### Accuracy (%) against temperature (one sample)\n");
        for e in evals.iter().filter(|e| !e.temperatures.is_empty()) {
            let v: Vec<String> = e
                .temperatures
                .iter()
                .map(|p| format!("T={}: {}", p.value, pct_ci(p.accuracy, e.problems)))
                .collect();
            let _ = writeln!(
                md,
                "- {}: greedy {}; {}",
                e.name,
                pct_ci(e.greedy.accuracy, e.problems),
                v.join(", ")
            );
        }
    }
    for e in evals.iter().filter(|e| !e.at_n.is_empty()) {
        let _ = writeln!(
            md,
            "\n### {}: cons@n and pass@n\n\n| n | cons@n % (95% interval) | pass@n % (95% interval) | total tokens |\n|---|---|---|---|",
            e.name
        );
        for a in &e.at_n {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.0} |",
                a.n,
                pct_ci(a.cons, e.problems),
                pct_ci(a.pass, e.problems),
                a.total_tokens
            );
        }
    }
    let _ = writeln!(md, "\n### Figures\n");
    for (name, svg) in figures(evals) {
        apr_model::checkpoint::write_atomic(&dir.join(&name), svg.as_bytes())?;
        let _ = writeln!(md, "![{name}]({name})");
    }
    Ok(md)
}
