//! Benches of the Countdown environment and the trace crate: problem
//! generation, the SoS+ and APR solvers (typed output, and rendered text),
//! whole dataset records, the parser and the tokenizer. Each reports
//! throughput in problems (elements) or bytes per second on one thread.

use apr_countdown::{
    apr, apr_log, sosp, sosp_log, AprRecipe, Problem, ProblemRecord, ProblemSpec, Recipe, Rng,
    SospRecipe,
};
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
    // A solver run on every problem, its parameters drawn as the recipe does.
    let mut bench = |name: &str, run: &dyn Fn(&Problem, &mut Rng)| {
        g.bench_function(name, |b| {
            b.iter(|| {
                for (i, p) in ps.iter().enumerate() {
                    run(p, &mut Rng::new(i as u64));
                }
            })
        });
    };
    // The solver's own output: a log of events over the search arena.
    bench("sosp_log", &|p, rng| {
        black_box(sosp_log(p, &sr.draw(rng), rng));
    });
    // ... materialised as typed lines.
    bench("sosp_typed", &|p, rng| {
        black_box(sosp(p, &sr.draw(rng), rng));
    });
    // ... rendered as text.
    bench("sosp_rendered", &|p, rng| {
        let log = sosp_log(p, &sr.draw(rng), rng);
        black_box(log.render(&log.root.calls[0]));
    });
    bench("apr_log", &|p, rng| {
        black_box(apr_log(p, &ar.draw(rng), rng));
    });
    bench("apr_typed", &|p, rng| {
        black_box(apr(p, &ar.draw(rng), rng));
    });
    bench("apr_rendered", &|p, rng| {
        black_box(apr_log(p, &ar.draw(rng), rng).dict());
    });
    // Whole dataset records as gen-data writes them (tokens, rating, JSON).
    let mut out = Vec::with_capacity(1 << 20);
    for (name, recipe) in [
        ("sosp_record_json", Recipe::Sosp(sr)),
        ("apr_record_json", Recipe::Apr(ar)),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                for (i, (p, r)) in ps.iter().zip(&recs).enumerate() {
                    out.clear();
                    recipe.write_record(r, p, 1, i as u64, &mut out);
                    black_box(&out);
                }
            })
        });
    }
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
