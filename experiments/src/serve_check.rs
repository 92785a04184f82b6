//! `serve-check`: greedy root calls of an exported model on a serving
//! engine (vLLM or SGLang, through `apr-serve`) against the same calls on
//! the native host decoder: how many generated token sequences are
//! identical, where the others first differ, the largest log-probability
//! difference, and the tokens/s of each side.
//!
//! This checks the serving protocol and the server's numerics call by
//! call; the full thread trees on a server need the orchestrator/backend
//! split of issue 21.

use crate::{Error, Result};
use apr_countdown::record::read_problems;
use apr_model::{checkpoint, Cpu, HostDecoder, KvCache, Llama};
use apr_serve::{CallRequest, CallResponse, Sampling};
use apr_trace::tokenizer::EOS_ID;
use apr_trace::{Task, TraceMode, TraceTokenizer};
use clap::Parser;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

/// Greedy root calls on a server against the native decoder.
#[derive(Debug, Parser)]
#[command(name = "serve-check", version)]
pub struct Cli {
    /// The exported model directory the server serves.
    #[arg(long)]
    pub model: PathBuf,
    /// Served model name (vLLM's `model` field); default: `--model` as given.
    #[arg(long)]
    pub served_name: Option<String>,
    /// `vllm` or `sglang`.
    #[arg(long, default_value = "vllm")]
    pub backend: String,
    /// Server URLs (several spread the calls).
    #[arg(long, value_delimiter = ',', required = true)]
    pub server_url: Vec<String>,
    /// Problems whose root prompts are the calls' prompts.
    #[arg(long, default_value = "datasets/countdown-val/val.jsonl")]
    pub problems: PathBuf,
    /// How many problems.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Trace mode of the prompts: `apr` or `sosp`.
    #[arg(long, default_value = "apr")]
    pub mode: String,
    /// Most new tokens per call.
    #[arg(long, default_value_t = 1024)]
    pub max_new_tokens: usize,
    /// Calls in flight on the server at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Seconds before one HTTP attempt gives up.
    #[arg(long, default_value_t = 600.0)]
    pub timeout: f64,
    /// First load `--model`'s weights into the server (the weight update
    /// GRPO does after each step; vLLM needs `VLLM_SERVER_DEV_MODE=1`).
    #[arg(long)]
    pub reload: bool,
    /// Only write `--model` untied to this directory (its head a copy of
    /// the embedding: what a server needs to reload weights in place) and
    /// exit.
    #[arg(long)]
    pub export_untied: Option<PathBuf>,
    /// Write the per-call comparison here (JSON).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Compare whole greedy rollouts (thread trees, spawns and joins
    /// included) through the orchestrator on both backends, instead of
    /// root calls.
    #[arg(long)]
    pub trees: bool,
    /// With `--trees`: write the model here (untied) and load it into the
    /// server before the server's run.
    #[arg(long)]
    pub weights_dir: Option<PathBuf>,
    /// With `--trees`: KV slots of the native run.
    #[arg(long, default_value_t = 64)]
    pub slots: usize,
}

/// What a `serve-check` run did.
#[derive(Debug)]
pub enum Outcome {
    /// Wrote `--export-untied`.
    Exported,
    /// Compared root calls.
    Calls(Summary),
    /// Compared whole rollouts (`--trees`).
    Trees(Box<crate::serve_trees::TreeSummary>),
}

/// One call's comparison.
#[derive(Debug, Serialize)]
pub struct CallCheck {
    /// Index of the problem.
    pub problem: usize,
    /// Tokens generated natively and on the server.
    pub native_tokens: usize,
    /// Tokens the server generated.
    pub server_tokens: usize,
    /// First position where the ids differ (None: identical).
    pub first_difference: Option<usize>,
    /// Largest |log-probability difference| over the shared prefix.
    pub max_logprob_diff: f32,
    /// The server's error, if the call failed.
    pub error: Option<String>,
}

/// The summary `serve-check` prints and writes.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Calls compared.
    pub calls: usize,
    /// Calls whose generated ids are identical.
    pub identical: usize,
    /// Calls the server failed.
    pub failed: usize,
    /// Native tokens/s (all rows batched on the host decoder).
    pub native_tokens_per_s: f64,
    /// Server tokens/s (calls in flight at `--concurrency`).
    pub server_tokens_per_s: f64,
    /// Prompt tokens the server reported as cached, over prompt tokens.
    pub server_cached_fraction: Option<f64>,
    /// Every call.
    pub checks: Vec<CallCheck>,
}

/// Greedy generation of every prompt on the host decoder, all rows in one
/// batch, each to the end token or `max_new` tokens.
fn native(
    model: &Llama<Cpu>,
    prompts: &[Vec<u32>],
    max_new: usize,
) -> Result<Vec<(Vec<u32>, Vec<f32>)>> {
    let cap = model.config.max_seq_len;
    let mut host = HostDecoder::new(model)?;
    let mut cache = KvCache::<Cpu>::on_host(&model.config, prompts.len(), cap);
    let mut out: Vec<(Vec<u32>, Vec<f32>)> = vec![(Vec::new(), Vec::new()); prompts.len()];
    let mut next: Vec<Vec<u32>> = prompts.to_vec();
    // Greedy picks draw nothing from the generator.
    let mut rng = apr_model::init::SplitMix::new(0);
    let mut live: Vec<usize> = (0..prompts.len())
        .filter(|&r| prompts[r].len() < cap)
        .collect();
    while !live.is_empty() {
        let feed: Vec<(usize, &[u32])> = live.iter().map(|&r| (r, &next[r][..])).collect();
        let logits = host.forward_last(&mut cache, &feed)?;
        let mut still = Vec::with_capacity(live.len());
        for (&r, row) in live.iter().zip(logits) {
            let (tok, lp) = apr_model::generate::pick(&row, 0.0, &mut rng);
            out[r].0.push(tok);
            out[r].1.push(lp);
            let full = cache.lens()[r] + 1 >= cap;
            if tok != EOS_ID && out[r].0.len() < max_new && !full {
                next[r] = vec![tok];
                still.push(r);
            }
        }
        live = still;
    }
    Ok(out)
}

impl Cli {
    /// The server the check calls: vLLM's served name is `--served-name`,
    /// else `--model` as given (as `vllm serve` names it).
    fn generation(&self) -> Result<apr_rollout::GenerationConfig> {
        let backend: apr_rollout::BackendKind = self.backend.parse()?;
        if backend == apr_rollout::BackendKind::Native {
            return Err(Error::Config("--backend native: vllm or sglang".into()));
        }
        Ok(apr_rollout::GenerationConfig {
            backend,
            server_urls: self.server_url.clone(),
            served_name: Some(
                self.served_name
                    .clone()
                    .unwrap_or_else(|| self.model.display().to_string()),
            ),
            concurrency: self.concurrency,
            timeout_s: self.timeout,
            weights_dir: self.weights_dir.clone(),
        })
    }
}

/// Runs the check.
pub fn run(cli: Cli) -> Result<Outcome> {
    let dev = Default::default();
    let model: Llama<Cpu> = checkpoint::load(&cli.model, &dev)?;
    if let Some(out) = &cli.export_untied {
        let tok = std::fs::read_to_string(cli.model.join("tokenizer.json")).ok();
        checkpoint::save_untied(&model, out, tok.as_deref())?;
        return Ok(Outcome::Exported);
    }
    if cli.trees {
        return trees(&cli, &model).map(|t| Outcome::Trees(Box::new(t)));
    }
    let tok = TraceTokenizer::new();
    let mode = match cli.mode.as_str() {
        "apr" => TraceMode::Apr,
        "sosp" => TraceMode::Sosp,
        m => return Err(Error::Config(format!("--mode {m}: apr or sosp"))),
    };
    let problems = read_problems(&cli.problems, Some(cli.limit))?;
    let texts: Vec<String> = problems.iter().map(|p| p.root_prompt(mode)).collect();
    let prompts: Vec<Vec<u32>> = texts.iter().map(|t| tok.call_ids(None, t)).collect();
    let t0 = Instant::now();
    let native = native(&model, &prompts, cli.max_new_tokens)?;
    let native_s = t0.elapsed().as_secs_f64();
    let mut pool = apr_rollout::generation::server_pool(&cli.generation()?)?;
    // The first prompt, whole, as the probe of the server's tokenizer.
    if let Some(probe) = texts.first() {
        pool.check_vocabulary(probe, &tok.encode(probe))?;
    }
    if cli.reload {
        let dir = std::fs::canonicalize(&cli.model).map_err(|e| Error::Io {
            path: cli.model.display().to_string(),
            source: e,
        })?;
        pool.reload_weights(&dir.display().to_string())?;
    }
    let t1 = Instant::now();
    for (i, p) in prompts.iter().enumerate() {
        let req = CallRequest {
            prompt: p.clone(),
            stop: Vec::new(),
            stop_ids: vec![EOS_ID],
            max_new_tokens: cli
                .max_new_tokens
                .min(model.config.max_seq_len.saturating_sub(p.len())),
            sampling: Sampling::GREEDY,
            seed: 0,
            vocab: tok.vocab_size(),
        };
        pool.submit(i as u64, req)?;
    }
    let mut served: Vec<Option<apr_serve::Result<CallResponse>>> =
        (0..prompts.len()).map(|_| None).collect();
    while pool.in_flight() > 0 {
        for (id, got) in pool.wait()? {
            served[id as usize] = Some(got);
        }
    }
    let server_s = t1.elapsed().as_secs_f64();
    let (mut cached, mut prompt_tokens, mut reported) = (0usize, 0usize, false);
    let mut checks = Vec::with_capacity(prompts.len());
    let (mut native_total, mut server_total) = (0usize, 0usize);
    for (i, ((ids, lps), got)) in native.iter().zip(served).enumerate() {
        native_total += ids.len();
        let mut check = CallCheck {
            problem: i,
            native_tokens: ids.len(),
            server_tokens: 0,
            first_difference: None,
            max_logprob_diff: 0.0,
            error: None,
        };
        match got {
            Some(Ok(r)) => {
                server_total += r.ids.len();
                check.server_tokens = r.ids.len();
                let shared = ids.iter().zip(&r.ids).take_while(|(a, b)| a == b).count();
                if shared < ids.len().max(r.ids.len()) {
                    check.first_difference = Some(shared);
                }
                check.max_logprob_diff = lps
                    .iter()
                    .zip(&r.logprobs)
                    .take(shared)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                if let Some(c) = r.cached_prompt_tokens {
                    cached += c;
                    reported = true;
                }
                prompt_tokens += prompts[i].len();
            }
            Some(Err(e)) => check.error = Some(e.to_string()),
            None => check.error = Some("no response".into()),
        }
        checks.push(check);
    }
    let summary = Summary {
        calls: checks.len(),
        identical: checks
            .iter()
            .filter(|c| c.error.is_none() && c.first_difference.is_none())
            .count(),
        failed: checks.iter().filter(|c| c.error.is_some()).count(),
        native_tokens_per_s: native_total as f64 / native_s,
        server_tokens_per_s: server_total as f64 / server_s,
        server_cached_fraction: reported.then(|| cached as f64 / prompt_tokens.max(1) as f64),
        checks,
    };
    if let Some(path) = &cli.out {
        let text =
            serde_json::to_string_pretty(&summary).map_err(|e| Error::Config(e.to_string()))?;
        apr_model::checkpoint::write_atomic(path, text.as_bytes())?;
    }
    Ok(Outcome::Calls(summary))
}

/// `--trees`: greedy rollouts under the default limits with
/// `--max-new-tokens`, natively and on the server.
fn trees(cli: &Cli, model: &Llama<Cpu>) -> Result<crate::serve_trees::TreeSummary> {
    let problems = read_problems(&cli.problems, Some(cli.limit))?;
    let mode = match cli.mode.as_str() {
        "apr" => apr_rollout::Mode::Apr,
        "sosp" | "single" => apr_rollout::Mode::Single,
        m => return Err(Error::Config(format!("--mode {m}: apr or sosp"))),
    };
    let mut cfg = apr_rollout::RolloutConfig {
        mode,
        sampling: apr_rollout::SamplingParams::greedy(),
        ..Default::default()
    };
    cfg.limits.max_new_tokens = cli.max_new_tokens;
    let summary =
        crate::serve_trees::compare(model, &problems, &cfg, cli.slots, &cli.generation()?)?;
    if let Some(path) = &cli.out {
        let text =
            serde_json::to_string_pretty(&summary).map_err(|e| Error::Config(e.to_string()))?;
        apr_model::checkpoint::write_atomic(path, text.as_bytes())?;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use apr_model::generate::SampleConfig;
    use apr_model::ModelConfig;

    /// The batched native side gives each prompt the tokens that greedy
    /// generation of that prompt alone gives, stopping at the end token,
    /// the limit, or when prompt and generated tokens fill the context (as
    /// the rollout engine and a server's request limit do).
    #[test]
    fn batched_native_calls_equal_greedy_generation_alone() {
        let mut c = ModelConfig::preset("tiny").unwrap();
        c.num_layers = 2;
        c.max_seq_len = 40;
        let m = Llama::<Cpu>::init(&c, 4, &Default::default());
        let prompts: Vec<Vec<u32>> = vec![vec![1, 50, 60], vec![1, 7, 8, 9, 10, 11], vec![1; 30]];
        for max_new in [5, 30] {
            let got = native(&m, &prompts, max_new).unwrap();
            for (p, (ids, lps)) in prompts.iter().zip(&got) {
                let cfg = SampleConfig {
                    temperature: 0.0,
                    max_new_tokens: max_new.min(40 - p.len()),
                    eos: EOS_ID,
                    seed: 0,
                };
                let alone = m.generate(p, &cfg).unwrap();
                assert_eq!(ids, &alone.tokens, "prompt of {}", p.len());
                assert_eq!(ids.len(), lps.len());
                assert!(ids.len() <= max_new && p.len() + ids.len() <= 40);
            }
        }
    }
}
