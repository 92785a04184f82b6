//! `rollout`: run a checkpoint on a problem file with the batched engine
//! and write one JSON line per (problem, sample), plus a summary.

use crate::{Error, Result};
use apr_model::{AprBackend, Llama};
use apr_rollout::{Mode, RolloutConfig, Summary};
use clap::Parser;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Run a trained model on Countdown problems with the batched rollout
/// engine: every thread of every problem decoded together, children
/// spawned and joined as the model asks. Writes one JSON line per
/// (problem, sample) with the thread tree, token ids and log-probabilities,
/// and a summary (accuracy, tokens, latency, threads).
#[derive(Debug, Parser)]
#[command(name = "rollout", version)]
pub struct Cli {
    /// Model directory (Hugging Face layout, as `train-sft` writes).
    #[arg(long)]
    pub model: PathBuf,
    /// Problem file (JSON Lines with `nums` and `target`).
    #[arg(long)]
    pub problems: PathBuf,
    /// Use the first N problems.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Results (JSON Lines). The summary goes to `<out>.summary.json` and
    /// the configuration to `<out>.config.toml`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A rollout config (TOML); the flags below override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// `apr` (spawn/join) or `single` (SoS+).
    #[arg(long, value_enum)]
    pub mode: Option<CliMode>,
    /// Independent samples per problem.
    #[arg(long)]
    pub samples: Option<usize>,
    /// 0 for greedy.
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Keep the k most likely tokens (0: all).
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Nucleus sampling mass (1: all).
    #[arg(long)]
    pub top_p: Option<f64>,
    /// Seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Conditioning: child-thread budget (APR) or token budget (single).
    /// SFT models saw it on every root call; give it to them.
    #[arg(long)]
    pub budget: Option<u32>,
    /// KV slots (threads held in memory at once).
    #[arg(long, default_value_t = 64)]
    pub slots: usize,
    /// Context window per thread (default: the model's).
    #[arg(long)]
    pub context: Option<usize>,
    /// Most new tokens per call.
    #[arg(long)]
    pub max_new_tokens: Option<usize>,
    /// Most children per spawn block.
    #[arg(long)]
    pub max_children: Option<usize>,
    /// Most spawn rounds per thread.
    #[arg(long)]
    pub max_rounds: Option<usize>,
    /// Deepest nesting (1: only the root spawns).
    #[arg(long)]
    pub max_depth: Option<usize>,
    /// Most tokens per problem sample (0: none).
    #[arg(long)]
    pub max_problem_tokens: Option<usize>,
    /// Most tokens fed per forward step.
    #[arg(long)]
    pub step_tokens: Option<usize>,
    /// Prefill each continuation in full instead of reusing the parent's cache.
    #[arg(long)]
    pub no_prefix_reuse: bool,
    /// End a thread whose spawn block numbers its entries out of order
    /// (the default reads them by position, as the reference does).
    #[arg(long)]
    pub strict_spawn_indices: bool,
    /// Leave token ids and log-probabilities out of the JSON lines.
    #[arg(long)]
    pub compact: bool,
    /// Run the model's steps through burn's ops even on the CPU, where the
    /// default is the host decoder (to compare the two paths).
    #[arg(long)]
    pub burn_forward: bool,
    /// Keep the KV cache's keys and values as bfloat16 (CPU host cache):
    /// half the memory and half the bytes attention reads; the logits move
    /// by about 1e-3. Default: f32.
    #[arg(long)]
    pub kv_bf16: bool,
    /// Device: `cpu`, or `cuda[:N]` in builds with the `cuda` feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Float type of weights and activations: `f32` or `bf16` (burn's
    /// per-device default dtype; checkpoints stay f32 on disk).
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Where the calls are generated: `--backend vllm --server-url URL`
    /// runs them on a server that serves `--model` (or loads it from
    /// `--weights-dir`).
    #[command(flatten)]
    pub generation: crate::generation_args::GenerationArgs,
}

/// Modes on the command line.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum CliMode {
    /// Spawn/join.
    Apr,
    /// One thread (SoS+).
    Single,
}

impl Cli {
    /// The rollout config: the file's (or the defaults), then the flags.
    pub fn rollout_config(&self) -> Result<RolloutConfig> {
        let mut c = match &self.config {
            Some(p) => RolloutConfig::load(p)?,
            None => RolloutConfig::default(),
        };
        if let Some(m) = self.mode {
            c.mode = match m {
                CliMode::Apr => Mode::Apr,
                CliMode::Single => Mode::Single,
            };
        }
        macro_rules! set {
            ($($flag:ident => $($field:ident).+),* $(,)?) => {
                $(if let Some(v) = self.$flag { c.$($field).+ = v; })*
            };
        }
        set!(samples => samples, temperature => sampling.temperature, top_k => sampling.top_k,
             top_p => sampling.top_p, seed => seed, context => limits.context,
             max_new_tokens => limits.max_new_tokens, max_children => limits.max_children,
             max_rounds => limits.max_rounds, max_depth => limits.max_depth,
             max_problem_tokens => limits.max_problem_tokens, step_tokens => step_tokens);
        if self.budget.is_some() {
            c.budget = self.budget;
        }
        if self.no_prefix_reuse {
            c.prefix_reuse = false;
        }
        if self.strict_spawn_indices {
            c.spawn_indices = apr_trace::SpawnIndices::Strict;
        }
        c.validate()?;
        Ok(c)
    }
}

/// Runs `rollout`.
pub fn run(cli: Cli) -> Result<()> {
    crate::device::with_backend!(&cli.device, infer, |B, d| {
        crate::device::set_dtype::<B>(d, &cli.dtype)?;
        go::<B>(&cli, d)
    })
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn go<B: AprBackend>(cli: &Cli, device: &B::Device) -> Result<()> {
    let cfg = cli.rollout_config()?;
    let model: Llama<B> = apr_rollout::load_model(&cli.model, device)?;
    let problems = apr_countdown::read_problems(&cli.problems, cli.limit)?;
    let total = problems.len() * cfg.samples;
    let bar = indicatif::ProgressBar::new(total as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} {msg} (eta {eta})",
        )
        .map_err(|e| Error::Config(e.to_string()))?,
    );
    let mut solved = 0usize;
    let on_done = |r: &apr_rollout::ProblemResult| {
        solved += r.solved as usize;
        bar.inc(1);
        bar.set_message(format!("solved {solved}"));
    };
    let ctx = model.config.max_seq_len;
    let mut generation = apr_rollout::GenerationConfig::default();
    cli.generation.apply(&mut generation);
    let (mut results, stats, cache) = if generation.backend == apr_rollout::BackendKind::Native {
        let kind = apr_rollout::StepperKind::from_switches::<B>(cli.burn_forward, cli.kv_bf16)?;
        let mut stepper = apr_rollout::LlamaStepper::with_kind(model, cli.slots, ctx, kind)?;
        let (r, s) = apr_rollout::run_stepper(&mut stepper, &problems, &cfg, on_done)?;
        (r, s, None)
    } else {
        let vocab = model.config.vocab_size;
        let mut gen = apr_rollout::Generator::connect(&generation, cli.slots, ctx, vocab)?;
        gen.sync(&model)?;
        let (r, s) = gen.run(&model, &problems, &cfg, on_done)?;
        (r, s, gen.cache_stats().cloned())
    };
    bar.finish_and_clear();
    let summary = Summary::of(&results);
    let report = serde_json::json!({
        "summary": summary,
        "engine": stats,
        "tokens_per_s": (stats.generated_tokens + stats.prefilled_tokens) as f64 / stats.seconds.max(1e-9),
        "generated_tokens_per_s": stats.generated_tokens as f64 / stats.seconds.max(1e-9),
        "model": cli.model, "problems": cli.problems, "slots": cli.slots,
        "backend": generation.backend, "prefix_cache": cache,
    });
    if let Some(out) = &cli.out {
        let mut buf = Vec::new();
        for r in &mut results {
            if cli.compact {
                r.root.strip_tokens();
            }
            serde_json::to_writer(&mut buf, r).map_err(|e| Error::Config(e.to_string()))?;
            buf.push(b'\n');
        }
        apr_model::checkpoint::write_atomic(out, &buf)?;
        let pretty =
            serde_json::to_vec_pretty(&report).map_err(|e| Error::Config(e.to_string()))?;
        apr_model::checkpoint::write_atomic(&with_suffix(out, ".summary.json"), &pretty)?;
        let toml = toml::to_string_pretty(&cfg).map_err(|e| Error::Config(e.to_string()))?;
        apr_model::checkpoint::write_atomic(&with_suffix(out, ".config.toml"), toml.as_bytes())?;
    }
    let mut o = std::io::stdout().lock();
    writeln!(
        o,
        "{} results: accuracy {:.1}%, parse rate {:.1}%, total tokens {:.0}, sequential tokens {:.0}, \
         child threads {:.2}, latency {:.2} s (means)",
        summary.results,
        100.0 * summary.accuracy,
        100.0 * summary.parse_rate,
        summary.mean_total_tokens,
        summary.mean_sequential_tokens,
        summary.mean_child_threads,
        summary.mean_latency_s
    )
    .and_then(|_| {
        writeln!(
            o,
            "engine: {} steps, mean batch {:.1}, {} generated + {} prefilled tokens ({} reused) in {:.1} s = {:.0} generated tokens/s; finish reasons {:?}",
            stats.steps,
            stats.batch_sum as f64 / stats.steps.max(1) as f64,
            stats.generated_tokens,
            stats.prefilled_tokens,
            stats.reused_tokens,
            stats.seconds,
            stats.generated_tokens as f64 / stats.seconds.max(1e-9),
            summary.finish_reasons
        )
    })
    .and_then(|_| match &cache {
        Some(c) => writeln!(
            o,
            "prefix cache ({} of {} calls reported): {:.1}% of prompt tokens cached, {:.1}% of the prompts after a join",
            c.reported_calls,
            stats.steps,
            100.0 * c.hit_rate(),
            100.0 * c.join_hit_rate()
        ),
        None => Ok(()),
    })
    .map_err(|e| Error::Config(e.to_string()))?;
    Ok(())
}
