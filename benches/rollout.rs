//! Rollout-engine benches on the `tiny` preset (random weights, burn flex):
//! decode tokens/s against batch size, the cost of spawn/join rounds, and
//! prefix reuse on and off. Results in `docs/rollout.md`.

use apr_countdown::{apr, AprParams, Problem, ProblemSpec, Rng};
use apr_model::{Cpu, Llama, ModelConfig};
use apr_rollout::mock::{Overlay, ScriptedModel};
use apr_rollout::{Engine, Limits, LlamaStepper, Mode, RolloutConfig, StepModel};
use apr_trace::TraceMode;
use apr_trace::TraceTokenizer;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::collections::HashSet;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn problems(n: u64) -> Vec<Problem> {
    let spec = ProblemSpec::default();
    let none = HashSet::new();
    (0..n)
        .map(|i| spec.problem(21, i, &none).unwrap())
        .collect()
}

fn model() -> Llama<Cpu> {
    Llama::init(
        &ModelConfig::preset("tiny").unwrap(),
        1,
        &Default::default(),
    )
}

/// Decode steps of `batch` rows after their root prompts are prefilled:
/// tokens/s of the cached forward the engine runs.
fn decode(c: &mut Criterion) {
    const STEPS: usize = 16;
    let tok = TraceTokenizer::new();
    let ps = problems(256);
    let mut g = c.benchmark_group("rollout/decode");
    g.sample_size(10);
    for batch in [1usize, 8, 64, 256] {
        let mut s = LlamaStepper::new(model(), batch, 512).unwrap();
        let prompts: Vec<Vec<u32>> = ps[..batch]
            .iter()
            .map(|p| tok.call_ids(None, &TraceMode::Apr.root_prompt(p.target, &p.nums)))
            .collect();
        let feed: Vec<(usize, &[u32])> = prompts
            .iter()
            .enumerate()
            .map(|(i, p)| (i, &p[..]))
            .collect();
        s.step(&feed).unwrap();
        g.throughput(Throughput::Elements((batch * STEPS) as u64));
        g.bench_function(format!("batch_{batch}"), |b| {
            b.iter(|| {
                for _ in 0..STEPS {
                    let next = [5u32];
                    let feed: Vec<(usize, &[u32])> = (0..batch).map(|i| (i, &next[..])).collect();
                    s.step(&feed).unwrap();
                }
                for (i, p) in prompts.iter().enumerate() {
                    s.truncate(i, p.len()).unwrap();
                }
            })
        });
    }
    g.finish();
}

/// Solver trees with spawn rounds, scripted.
fn trees(n: u64) -> (Vec<Problem>, ScriptedModel, usize) {
    let ps = problems(n);
    let mut m = ScriptedModel::new(64, 2048);
    let mut rounds = 0;
    for (i, p) in ps.iter().enumerate() {
        let params = AprParams::always_spawning(3, 4, 1);
        let d = apr(p, &params, &mut Rng::new(i as u64)).tree.to_dict();
        rounds += d.sub_calls.len();
        m = m
            .with_tree(&d, &TraceMode::Apr.root_prompt(p.target, &p.nums), None)
            .unwrap();
    }
    (ps, m, rounds)
}

/// Engine overhead of spawn/join rounds: the scripted model does no
/// compute, so the time is the scheduler's (parsing spawn blocks, building
/// child prompts and continuations, tokenizing, bookkeeping).
fn spawn_join(c: &mut Criterion) {
    let (ps, script, rounds) = trees(16);
    let mut g = c.benchmark_group("rollout/spawn_join");
    g.sample_size(10);
    g.throughput(Throughput::Elements(rounds as u64));
    g.bench_function("scheduler_only_per_round", |b| {
        b.iter(|| {
            let mut m = script.clone();
            Engine::new(&mut m, RolloutConfig::default())
                .unwrap()
                .run(&ps, |_| {})
                .unwrap()
        })
    });
    g.finish();
}

/// The same spawning trees on the real model's compute, with and without
/// reusing the parent's KV cache for its continuation.
fn prefix_reuse(c: &mut Criterion) {
    let (ps, script, _) = trees(4);
    let mut g = c.benchmark_group("rollout/prefix_reuse");
    g.sample_size(10);
    for reuse in [true, false] {
        let cfg = RolloutConfig {
            mode: Mode::Apr,
            prefix_reuse: reuse,
            limits: Limits::default(),
            ..RolloutConfig::default()
        };
        g.bench_function(if reuse { "on" } else { "off" }, |b| {
            b.iter(|| {
                let mut m = Overlay {
                    inner: LlamaStepper::new(model(), 16, 2048).unwrap(),
                    script: script.clone(),
                };
                Engine::new(&mut m, cfg.clone())
                    .unwrap()
                    .run(&ps, |_| {})
                    .unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, decode, spawn_join, prefix_reuse);
criterion_main!(benches);
