//! `decode-bench`: rollout-engine decoding throughput against batch size,
//! with the inputs the PyTorch/`transformers` baseline needs to run the
//! same model on the same prompts (`benches/baselines/generate_cpu.sh`).

use crate::{Error, Result};
use apr_model::{checkpoint, AprBackend, Llama, ModelConfig};
use apr_rollout::{LlamaStepper, Mode, RolloutConfig, StepperKind};
use apr_trace::TraceMode;
use apr_trace::TraceTokenizer;
use burn::tensor::{Int, Tensor, TensorData};
use clap::Parser;
use std::path::PathBuf;

/// Decoding throughput of the rollout engine at several batch sizes:
/// single-thread mode, greedy, every call run to `--new-tokens` (the end
/// token ignored), prefill included in the time, as `generate` measures.
#[derive(Debug, Parser)]
#[command(name = "decode-bench", version)]
pub struct Cli {
    /// Model directory; without it a `--preset` model with random weights
    /// (seed 1) is created and saved to `--save-model`.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Preset of the random model.
    #[arg(long, default_value = "tiny")]
    pub preset: String,
    /// Where to save the random model (for the baseline to load).
    #[arg(long)]
    pub save_model: Option<PathBuf>,
    /// Problem file whose root prompts are the batch's prompts.
    #[arg(long, default_value = "datasets/countdown-val/val.jsonl")]
    pub problems: PathBuf,
    /// Batch sizes, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64,256")]
    pub batches: Vec<usize>,
    /// New tokens per sequence.
    #[arg(long, default_value_t = 128)]
    pub new_tokens: usize,
    /// Write the prompts' token ids and a logits check here (JSON) for the
    /// baseline.
    #[arg(long)]
    pub dump: Option<PathBuf>,
    /// Also time each batch size with the steps through burn's ops (the
    /// engine's CPU default is the host decoder), side by side.
    #[arg(long)]
    pub compare_burn: bool,
    /// Device: `cpu`, `cuda` or `cuda:N` (builds with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Float type of weights and activations: `f32` or `bf16` (burn's
    /// per-device default dtype; checkpoints stay f32 on disk).
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Keep the KV cache's keys and values as bfloat16 (CPU host cache):
    /// half the memory and half the bytes attention reads; the logits move
    /// by about 1e-3. Default: f32.
    #[arg(long)]
    pub kv_bf16: bool,
    /// Untimed runs of each batch before the timed one (burn's GPU kernels
    /// compile and autotune on first use).
    #[arg(long, default_value_t = 0)]
    pub warmup_runs: usize,
    /// Write every timed run's generated token ids here (JSON: batch size
    /// to one list per sequence), to compare devices.
    #[arg(long)]
    pub tokens_out: Option<PathBuf>,
}

/// Runs `decode-bench`; prints one JSON line per batch size.
pub fn run(cli: Cli) -> Result<()> {
    crate::device::with_backend!(&cli.device, infer, |B, d| {
        crate::device::set_dtype::<B>(d, &cli.dtype)?;
        go::<B>(&cli, d)
    })
}

fn go<B: AprBackend>(cli: &Cli, device: &B::Device) -> Result<()> {
    let model: Llama<B> = match &cli.model {
        Some(dir) => apr_rollout::load_model(dir, device)?,
        None => {
            let m = Llama::init(&ModelConfig::preset(&cli.preset)?, 1, device);
            if let Some(dir) = &cli.save_model {
                let tok = TraceTokenizer::new().to_hf_json()?;
                checkpoint::save(&m, dir, Some(&tok))?;
            }
            m
        }
    };
    // Errors on a file without problems.
    let problems = apr_countdown::read_problems(&cli.problems, None)?;
    let max_b = cli.batches.iter().copied().max().unwrap_or(1);
    let batch: Vec<_> = (0..max_b)
        .map(|i| problems[i % problems.len()].clone())
        .collect();
    let tok = TraceTokenizer::new();
    if let Some(path) = &cli.dump {
        let prompts: Vec<Vec<u32>> = batch
            .iter()
            .map(|p| tok.call_ids(None, &TraceMode::Apr.root_prompt(p.target, &p.nums)))
            .collect();
        // Logits of the last position of the first prompt, for the check
        // that transformers computes the same model.
        let ids = &prompts[0];
        let t = Tensor::<B, 2, Int>::from_data(
            TensorData::new(ids.iter().map(|&x| x as i64).collect(), [1, ids.len()]),
            device,
        );
        let v = model.config.vocab_size;
        let logits: Vec<f32> = model
            .forward(t, None)
            .slice([0..1, ids.len() - 1..ids.len(), 0..v])
            .into_data()
            .convert::<f32>()
            .to_vec()
            .map_err(|e| Error::Config(format!("{e:?}")))?;
        let j = serde_json::json!({"prompts": prompts, "check_logits": logits});
        apr_model::checkpoint::write_atomic(path, j.to_string().as_bytes())?;
    }
    let ctx = model.config.max_seq_len;
    let mut tokens = serde_json::Map::new();
    for &b in &cli.batches {
        let cfg = RolloutConfig {
            mode: Mode::Single,
            ignore_eos: true,
            limits: apr_rollout::Limits {
                max_new_tokens: cli.new_tokens,
                ..Default::default()
            },
            ..RolloutConfig::default()
        };
        let paths: &[bool] = if cli.compare_burn {
            &[false, true]
        } else {
            &[false]
        };
        for &burn in paths {
            let kind = StepperKind::from_switches::<B>(burn, cli.kv_bf16)?;
            let mut stepper = LlamaStepper::with_kind(model.clone(), b, ctx, kind)?;
            let name = if stepper.host_decode() {
                "apr-rollout (host decoder)"
            } else {
                "apr-rollout (burn)"
            };
            for _ in 0..cli.warmup_runs {
                apr_rollout::run_stepper(&mut stepper, &batch[..b], &cfg, |_| {})?;
            }
            let (res, s) = apr_rollout::run_stepper(&mut stepper, &batch[..b], &cfg, |_| {})?;
            println!(
                "{}",
                serde_json::json!({
                    "impl": name, "device": cli.device, "batch": b,
                    "new_tokens": cli.new_tokens, "warmup_runs": cli.warmup_runs,
                    "generated_tokens": s.generated_tokens, "seconds": s.seconds,
                    "tokens_per_s": s.generated_tokens as f64 / s.seconds,
                    "steps": s.steps,
                    "kv_cache": if cli.kv_bf16 { "bf16" } else { "f32" },
                })
            );
            if !burn {
                let ids: Vec<&[u32]> = res
                    .iter()
                    .map(|r| {
                        r.root
                            .calls
                            .first()
                            .map_or(&[][..], |c| c.generated_ids.as_slice())
                    })
                    .collect();
                tokens.insert(b.to_string(), serde_json::json!(ids));
            }
        }
    }
    if let Some(path) = &cli.tokens_out {
        let j = serde_json::Value::Object(tokens).to_string();
        apr_model::checkpoint::write_atomic(path, j.as_bytes())?;
    }
    Ok(())
}
