//! Benches of the Countdown environment and the trace crate: problem
//! generation, the SoS+ and APR solvers (typed output, and rendered text),
//! whole dataset records, the parser and the tokenizer. Each reports
//! throughput in problems (elements) or bytes per second on one thread.

use apr_countdown::{apr, sosp, AprRecipe, Problem, ProblemRecord, ProblemSpec, Rng, SospRecipe};
use apr_trace::{parse_trace, TraceTokenizer};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::collections::HashSet;
use std::hint::black_box;

// The binaries use mimalloc; so do the benches.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const N: u64 = 200;

fn problems() -> Vec<Problem> {
    let spec = ProblemSpec::default();
    let none = HashSet::new();
    (0..N).map(|i| spec.problem(7, i, &none).unwrap()).collect()
}

fn bench_problems(c: &mut Criterion) {
    let spec = ProblemSpec::default();
    let none = HashSet::new();
    let mut g = c.benchmark_group("problems");
    g.throughput(Throughput::Elements(N));
    g.bench_function("draw_solvable", |b| {
        b.iter(|| {
            (0..N).for_each(|i| {
                black_box(spec.problem(3, i, &none).unwrap());
            })
        })
    });
    let ps = problems();
    g.bench_function("draw_solvable_plus_dfs_record", |b| {
        b.iter(|| {
            (0..N).for_each(|i| {
                black_box(ProblemRecord::new(&spec.problem(3, i, &none).unwrap()).unwrap());
            })
        })
    });
    g.bench_function("dfs_solve", |b| {
        b.iter(|| {
            ps.iter().for_each(|p| {
                black_box(p.solve_dfs());
            })
        })
    });
    g.finish();
}

fn bench_solvers(c: &mut Criterion) {
    let ps = problems();
    let recs: Vec<ProblemRecord> = ps.iter().map(|p| ProblemRecord::new(p).unwrap()).collect();
    let (sr, ar) = (SospRecipe::default(), AprRecipe::default());
    let mut g = c.benchmark_group("solvers");
    g.throughput(Throughput::Elements(N));
    g.bench_function("sosp_typed", |b| {
        b.iter(|| {
            for (i, p) in ps.iter().enumerate() {
                let mut rng = Rng::new(i as u64);
                let params = sr.draw(&mut rng);
                black_box(sosp(p, &params, &mut rng));
            }
        })
    });
    g.bench_function("sosp_rendered", |b| {
        b.iter(|| {
            for (i, p) in ps.iter().enumerate() {
                let mut rng = Rng::new(i as u64);
                let params = sr.draw(&mut rng);
                black_box(sosp(p, &params, &mut rng).trace.render());
            }
        })
    });
    g.bench_function("apr_typed", |b| {
        b.iter(|| {
            for (i, p) in ps.iter().enumerate() {
                let mut rng = Rng::new(i as u64);
                let params = ar.draw(&mut rng);
                black_box(apr(p, &params, &mut rng));
            }
        })
    });
    g.bench_function("apr_rendered", |b| {
        b.iter(|| {
            for (i, p) in ps.iter().enumerate() {
                let mut rng = Rng::new(i as u64);
                let params = ar.draw(&mut rng);
                black_box(apr(p, &params, &mut rng).tree.to_dict());
            }
        })
    });
    g.bench_function("sosp_record_json", |b| {
        b.iter(|| {
            for (i, (p, r)) in ps.iter().zip(&recs).enumerate() {
                black_box(serde_json::to_string(&sr.record(r, p, 1, i as u64)).unwrap());
            }
        })
    });
    g.bench_function("apr_record_json", |b| {
        b.iter(|| {
            for (i, (p, r)) in ps.iter().zip(&recs).enumerate() {
                black_box(serde_json::to_string(&ar.record(r, p, 1, i as u64)).unwrap());
            }
        })
    });
    g.finish();
}

fn bench_text(c: &mut Criterion) {
    let ps = problems();
    let ar = AprRecipe::default();
    let texts: Vec<String> = ps
        .iter()
        .enumerate()
        .flat_map(|(i, p)| {
            let mut rng = Rng::new(i as u64);
            let params = ar.draw(&mut rng);
            apr(p, &params, &mut rng)
                .tree
                .to_dict()
                .all_calls()
                .into_iter()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let bytes: usize = texts.iter().map(String::len).sum();
    let tok = TraceTokenizer::new();
    let mut g = c.benchmark_group("trace_text");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("parse", |b| {
        b.iter(|| {
            texts.iter().for_each(|t| {
                black_box(parse_trace(t).unwrap());
            })
        })
    });
    g.bench_function("tokenize_native", |b| {
        b.iter(|| {
            texts.iter().for_each(|t| {
                black_box(tok.encode(t));
            })
        })
    });
    let hf = tok.to_hf().unwrap();
    let few = &texts[..texts.len().min(50)];
    let few_bytes: usize = few.iter().map(String::len).sum();
    g.throughput(Throughput::Bytes(few_bytes as u64));
    g.bench_function("tokenize_hf_50_calls", |b| {
        b.iter(|| {
            few.iter().for_each(|t| {
                black_box(hf.encode(t.as_str(), false).unwrap());
            })
        })
    });
    g.bench_function("tokenize_native_50_calls", |b| {
        b.iter(|| {
            few.iter().for_each(|t| {
                black_box(tok.encode(t));
            })
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = bench_problems, bench_solvers, bench_text
}
criterion_main!(benches);
