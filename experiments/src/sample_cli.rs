//! `sample`: a trained model's traces, for one problem (printed) or a
//! problem file (a summary, and one JSON line per problem).

use crate::{Error, Result};
use apr_countdown::Problem;
use apr_model::{AprBackend, Llama};
use apr_train::sample::{sample, SampleLimits, SampleResult};
use apr_train::TraceKind;
use clap::Parser;
use std::io::Write;
use std::path::PathBuf;

/// Run a trained model on Countdown problems, thread by thread (parent,
/// then each child it spawns, then the parent's continuation), and check
/// the traces: grammar and verified answer.
#[derive(Debug, Parser)]
#[command(name = "sample", version)]
pub struct Cli {
    /// Model directory (Hugging Face layout, as `train-sft` writes).
    #[arg(long)]
    pub model: PathBuf,
    /// The model's trace kind.
    #[arg(long, value_enum, default_value = "apr")]
    pub kind: Kind,
    /// Numbers of one problem, comma separated (with --target).
    #[arg(long, value_delimiter = ',', requires = "target")]
    pub nums: Option<Vec<u64>>,
    /// Target of one problem.
    #[arg(long)]
    pub target: Option<u64>,
    /// A problem file (JSON Lines) instead of one problem.
    #[arg(long, conflicts_with = "nums")]
    pub problems: Option<PathBuf>,
    /// Use the first N problems of the file.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Per-problem results (JSON Lines), for a problem file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Conditioning: child-thread budget (APR) or token budget (SoS+).
    #[arg(long)]
    pub budget: Option<u32>,
    /// 0 for greedy decoding.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Device: `cpu`, or `cuda[:N]` in builds with the `cuda` feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Trace kinds on the command line.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Kind {
    /// APR (spawn/join).
    Apr,
    /// SoS+ (one thread).
    Sosp,
}

/// Summary of a problem file.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Summary {
    /// Problems run.
    pub problems: usize,
    /// Share whose every call parses under the trace grammar.
    pub parse_rate: f64,
    /// Share solved (verified answer).
    pub accuracy: f64,
    /// Mean generated tokens per problem.
    pub mean_generated_tokens: f64,
    /// Mean child threads per problem.
    pub mean_child_threads: f64,
}

/// Runs `sample`.
pub fn run(cli: Cli) -> Result<()> {
    crate::device::with_backend!(&cli.device, infer, |B, d| go::<B>(&cli, d))
}

fn go<B: AprBackend>(cli: &Cli, device: &B::Device) -> Result<()> {
    let model: Llama<B> = apr_rollout::load_model(&cli.model, device)?;
    let kind = match cli.kind {
        Kind::Apr => TraceKind::Apr,
        Kind::Sosp => TraceKind::Sosp,
    };
    let limits = SampleLimits {
        temperature: cli.temperature,
        seed: cli.seed,
        ..SampleLimits::default()
    };
    if let (Some(nums), Some(target)) = (&cli.nums, cli.target) {
        let p = Problem {
            nums: nums.clone(),
            target,
        };
        let r = sample(&model, &p, kind, cli.budget, &limits)?;
        print_tree(&r.root, "main");
        println!(
            "parses: {}, solved: {}, generated tokens: {}, child threads: {}",
            r.parses, r.solved, r.generated_tokens, r.child_threads
        );
        return Ok(());
    }
    let path = cli
        .problems
        .as_ref()
        .ok_or_else(|| Error::Config("give --nums and --target, or --problems".into()))?;
    let problems = apr_countdown::read_problems(path, cli.limit)?;
    let bar = indicatif::ProgressBar::new(problems.len() as u64);
    let mut results: Vec<SampleResult> = Vec::with_capacity(problems.len());
    let mut lines = Vec::new();
    for (i, p) in problems.iter().enumerate() {
        let r = sample(&model, p, kind, cli.budget, &limits)?;
        lines.push(serde_json::json!({
            "index": i, "nums": p.nums, "target": p.target, "parses": r.parses,
            "solved": r.solved, "generated_tokens": r.generated_tokens,
            "child_threads": r.child_threads, "finish": r.root.finish,
            "trace_dict": r.root.dict(),
        }));
        results.push(r);
        bar.inc(1);
        let solved = results.iter().filter(|r| r.solved).count();
        bar.set_message(format!("solved {solved}/{}", results.len()));
    }
    bar.finish_and_clear();
    let s = summarize(&results);
    if let Some(out) = &cli.out {
        let mut buf = Vec::new();
        for l in &lines {
            writeln!(buf, "{l}").map_err(|e| Error::Config(e.to_string()))?;
        }
        apr_model::checkpoint::write_atomic(out, &buf)?;
    }
    println!(
        "{} problems: parse rate {:.1}%, accuracy {:.1}%, {:.0} generated tokens and {:.2} child threads per problem",
        s.problems,
        100.0 * s.parse_rate,
        100.0 * s.accuracy,
        s.mean_generated_tokens,
        s.mean_child_threads
    );
    Ok(())
}

/// Summary of results.
pub fn summarize(results: &[SampleResult]) -> Summary {
    let n = results.len().max(1) as f64;
    Summary {
        problems: results.len(),
        parse_rate: results.iter().filter(|r| r.parses).count() as f64 / n,
        accuracy: results.iter().filter(|r| r.solved).count() as f64 / n,
        mean_generated_tokens: results
            .iter()
            .map(|r| r.generated_tokens as f64)
            .sum::<f64>()
            / n,
        mean_child_threads: results.iter().map(|r| r.child_threads as f64).sum::<f64>() / n,
    }
}

fn print_tree(t: &apr_train::sample::SampledThread, name: &str) {
    for (i, c) in t.calls.iter().enumerate() {
        println!("===== {name} call {i} =====");
        print!("{c}");
        if let Some(kids) = t.children.get(i) {
            for (j, k) in kids.iter().enumerate() {
                print_tree(k, &format!("{name} / child {j} of round {i}"));
            }
        }
    }
    println!("----- {name} ended: {:?}", t.finish);
}
