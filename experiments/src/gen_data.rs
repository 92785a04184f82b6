//! `gen-data`: Countdown problems and solver traces as JSON Lines, and
//! statistics of such files (ours or the public datasets').

use crate::chunked::write_lines;
use crate::error::{Error, Result};
use crate::jsonl::{read_records, AtomicWriter};
use crate::stats;
use apr_countdown::{
    AprRecipe, Heuristic, MoveOrder, Problem, ProblemKey, ProblemRecord, ProblemSpec, Pruning,
    Recipe, SospRecipe,
};
use apr_model::checkpoint::write_atomic;
use apr_trace::TraceTokenizer;
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Generate Countdown problems and symbolic-solver traces (APR, SoS+) as JSON
/// Lines with the public APR datasets' field names, or check such files.
#[derive(Debug, Parser)]
#[command(name = "gen-data", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Draw solvable problems (with their DFS solution and optimal path).
    Problems(ProblemsArgs),
    /// Run a symbolic solver on every problem of a file.
    Traces(TracesArgs),
    /// Print statistics of a problems or traces file and re-check every record.
    Stats(StatsArgs),
    /// Write the trace-language tokenizer as a Hugging Face tokenizer.json.
    Tokenizer(TokenizerArgs),
}

/// Arguments of `gen-data problems`.
#[derive(Debug, Args, Serialize)]
pub struct ProblemsArgs {
    /// Number of problems.
    #[arg(long)]
    pub count: u64,
    /// Master seed; problem i depends only on (seed, i).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Input numbers per problem: `4`, or a range `3-6`.
    #[arg(long, default_value = "4")]
    pub numbers: String,
    /// Smallest target.
    #[arg(long, default_value_t = 10)]
    pub min_target: u64,
    /// Largest target.
    #[arg(long, default_value_t = 100)]
    pub max_target: u64,
    /// Smallest input number.
    #[arg(long, default_value_t = 1)]
    pub min_number: u64,
    /// Largest input number (default: max-target - 1, as the reference).
    #[arg(long)]
    pub max_number: Option<u64>,
    /// Problem files whose (sorted numbers, target) keys must not be drawn
    /// (e.g. the validation set when drawing a training set).
    #[arg(long)]
    pub exclude: Vec<PathBuf>,
    /// Output JSON Lines file (written atomically).
    #[arg(long)]
    pub out: PathBuf,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// `--order`: [`MoveOrder`] on the command line.
#[derive(Debug, Clone, Copy, ValueEnum, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// A random shuffle of the kept successors (the official solvers).
    Shuffled,
    /// Best heuristic first (a departure: `docs/countdown-data.md`).
    Heuristic,
    /// The order the moves are generated in (a departure, as `heuristic`).
    Generation,
}

impl From<Order> for MoveOrder {
    fn from(o: Order) -> MoveOrder {
        match o {
            Order::Shuffled => MoveOrder::Shuffled,
            Order::Heuristic => MoveOrder::Heuristic,
            Order::Generation => MoveOrder::Generation,
        }
    }
}

/// Which symbolic solver.
#[derive(Debug, Clone, Copy, ValueEnum, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Solver {
    /// Adaptive parallel reasoning: hybrid search with child threads.
    Apr,
    /// Serialized hybrid search (SoS+), one thread.
    Sosp,
}

/// Arguments of `gen-data traces`.
#[derive(Debug, Args, Serialize)]
pub struct TracesArgs {
    /// Solver.
    #[arg(long, value_enum)]
    pub solver: Solver,
    /// Problems file (JSON Lines, or a JSON array).
    #[arg(long)]
    pub problems: PathBuf,
    /// Master seed; trace i depends only on (seed, i).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output JSON Lines file (written atomically).
    #[arg(long)]
    pub out: PathBuf,
    /// Smallest beam (drawn uniformly per problem).
    #[arg(long, default_value_t = 1)]
    pub min_beam: usize,
    /// Largest beam (default: 5 for sosp, 10 for apr).
    #[arg(long)]
    pub max_beam: Option<usize>,
    /// APR: largest child beam (drawn in beam..=this).
    #[arg(long, default_value_t = 15)]
    pub max_sub_beam: usize,
    /// Probability of a promising expansion (default: 0.5 sosp, 0.9 apr).
    #[arg(long)]
    pub promising: Option<f64>,
    /// Heuristic: mult or sum.
    #[arg(long, default_value = "mult")]
    pub heuristic: String,
    /// Keep successors with heuristic <= this instead of the beam best.
    #[arg(long)]
    pub threshold: Option<f64>,
    /// Order of each expansion's kept successors.
    #[arg(long, value_enum, default_value = "shuffled")]
    pub order: Order,
    /// APR: threads at levels below this may spawn (1: the reference; 2:
    /// children spawn grandchildren).
    #[arg(long, default_value_t = 1)]
    pub max_spawn_depth: u32,
    /// Only the first N problems.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// Arguments of `gen-data stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// A problems or traces file.
    pub file: PathBuf,
    /// Also write the statistics as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Arguments of `gen-data tokenizer`.
#[derive(Debug, Args)]
pub struct TokenizerArgs {
    /// Output tokenizer.json.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Problems(a) => problems(&a).map(|_| ()),
        Command::Traces(a) => traces(&a).map(|_| ()),
        Command::Stats(a) => {
            let s = stats::file_stats(&a.file)?;
            print!("{}", s.report());
            if let Some(j) = a.json {
                let text = serde_json::to_string_pretty(&s).expect("stats serialise");
                write_atomic(&j, text.as_bytes())?;
            }
            match s.invalid_records() {
                0 => Ok(()),
                count => Err(Error::Invalid {
                    path: a.file.display().to_string(),
                    count,
                }),
            }
        }
        Command::Tokenizer(a) => {
            let json = TraceTokenizer::new().to_hf_json()?;
            write_atomic(&a.out, json.as_bytes())?;
            eprintln!(
                "wrote {} ({} tokens)",
                a.out.display(),
                TraceTokenizer::new().vocab_size()
            );
            Ok(())
        }
    }
}

/// Parses `4` or `3-6` (also `3..=6`).
pub fn parse_range(s: &str) -> Result<(usize, usize)> {
    let bad = || Error::Config(format!("--numbers: expected N or A-B, got {s:?}"));
    let parts: Vec<&str> = if s.contains("..=") {
        s.split("..=").collect()
    } else {
        s.split('-').collect()
    };
    let nums: Vec<usize> = parts
        .iter()
        .map(|p| p.trim().parse().map_err(|_| bad()))
        .collect::<Result<_>>()?;
    match nums.as_slice() {
        [n] => Ok((*n, *n)),
        [a, b] => Ok((*a, *b)),
        _ => Err(bad()),
    }
}

fn pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Config(format!("thread pool: {e}")))
}

fn progress(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what} [{{bar:40}}] {{pos}}/{{len}} {{per_sec}} eta {{eta}}"
        ))
        .expect("valid template"),
    );
    pb
}

/// Throughput of a finished run.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Records written.
    pub records: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Worker threads.
    pub threads: usize,
}

impl Throughput {
    /// Records per second.
    pub fn per_second(&self) -> f64 {
        self.records as f64 / self.seconds.max(1e-9)
    }

    fn line(&self, what: &str, out: &Path) -> String {
        format!(
            "{} {what} -> {} in {:.2} s: {:.0}/s on {} thread(s){}, {:.0}/s per thread",
            self.records,
            out.display(),
            self.seconds,
            self.per_second(),
            self.threads,
            // Several workers hand their chunks to a writer thread.
            if self.threads > 1 {
                " and a writer"
            } else {
                ""
            },
            self.per_second() / self.threads as f64
        )
    }
}

/// Maps `0..n` to JSON lines in parallel, writing them in order to `out`
/// atomically, with a progress bar (see [`write_lines`]).
fn generate(
    n: usize,
    threads: usize,
    what: &str,
    out: &Path,
    make: impl Fn(usize, &mut Vec<u8>) -> Result<()> + Sync,
) -> Result<Throughput> {
    let pool = pool(threads)?;
    let threads = pool.current_num_threads();
    let start = Instant::now();
    let pb = progress(n as u64, what);
    let w = write_lines(n, &pool, AtomicWriter::create(out)?, &pb, make)?;
    w.commit()?;
    pb.finish_and_clear();
    Ok(Throughput {
        records: n,
        seconds: start.elapsed().as_secs_f64(),
        threads,
    })
}

/// What `OUT.toml` records about the run that wrote `OUT`.
#[derive(Serialize)]
struct RunConfig<'a, A: Serialize, R: Serialize> {
    command: &'a str,
    args: &'a A,
    resolved: &'a R,
}

/// Writes the arguments of a run next to its output (`OUT.toml`).
fn save_config<A: Serialize, R: Serialize>(
    out: &Path,
    command: &str,
    args: &A,
    resolved: &R,
) -> Result<()> {
    let mut name = out.as_os_str().to_owned();
    name.push(".toml");
    let cfg = RunConfig {
        command,
        args,
        resolved,
    };
    let text = toml::to_string_pretty(&cfg).map_err(|e| Error::Config(e.to_string()))?;
    Ok(write_atomic(Path::new(&name), text.as_bytes())?)
}

/// `gen-data problems`.
pub fn problems(a: &ProblemsArgs) -> Result<Throughput> {
    let (min_numbers, max_numbers) = parse_range(&a.numbers)?;
    let spec = ProblemSpec {
        min_numbers,
        max_numbers,
        min_number: a.min_number,
        max_number: a.max_number.unwrap_or(a.max_target.saturating_sub(1)),
        min_target: a.min_target,
        max_target: a.max_target,
    };
    spec.validate()?;
    let mut exclude: HashSet<ProblemKey> = HashSet::new();
    for f in &a.exclude {
        let recs: Vec<ProblemRecord> = read_records(f)?;
        exclude.extend(recs.iter().map(|r| {
            Problem {
                nums: r.nums.clone(),
                target: r.target,
            }
            .key()
        }));
    }
    let t = generate(
        a.count as usize,
        a.threads,
        "problems",
        &a.out,
        |i, line| {
            let p = spec.problem(a.seed, i as u64, &exclude)?;
            ProblemRecord::new(&p)?.write_json_line(line);
            Ok(())
        },
    )?;
    save_config(&a.out, "problems", a, &spec)?;
    eprintln!("{}", t.line("problems", &a.out));
    Ok(t)
}

/// Reads a problems file, checking every record.
pub fn read_problems(path: &Path) -> Result<Vec<(ProblemRecord, Problem)>> {
    let recs: Vec<ProblemRecord> = read_records(path)?;
    recs.into_iter()
        .enumerate()
        .map(|(i, r)| match r.problem() {
            Ok(p) => Ok((r, p)),
            Err(message) => Err(Error::Record {
                path: path.display().to_string(),
                record: i + 1,
                message,
            }),
        })
        .collect()
}

/// `gen-data traces`.
pub fn traces(a: &TracesArgs) -> Result<Throughput> {
    let heuristic = Heuristic::parse(&a.heuristic).ok_or_else(|| {
        Error::Config(format!(
            "--heuristic: expected mult or sum, got {:?}",
            a.heuristic
        ))
    })?;
    let pruning = a.threshold.map_or(Pruning::Beam, Pruning::Threshold);
    let recipe = match a.solver {
        Solver::Sosp => Recipe::Sosp(SospRecipe {
            min_beam: a.min_beam,
            max_beam: a.max_beam.unwrap_or(5),
            promising: a.promising.unwrap_or(0.5),
            heuristic,
            pruning,
            order: a.order.into(),
        }),
        Solver::Apr => Recipe::Apr(AprRecipe {
            min_beam: a.min_beam,
            max_beam: a.max_beam.unwrap_or(10),
            max_sub_beam: a.max_sub_beam,
            promising: a.promising.unwrap_or(0.9),
            heuristic,
            pruning,
            order: a.order.into(),
            max_spawn_depth: a.max_spawn_depth,
        }),
    };
    recipe.validate()?;
    let mut problems = read_problems(&a.problems)?;
    if let Some(l) = a.limit {
        problems.truncate(l);
    }
    let t = write_traces(&problems, &recipe, a.seed, a.threads, &a.out)?;
    save_config(&a.out, "traces", a, &recipe)?;
    Ok(t)
}

/// Writes the trace record of every problem with `recipe` to `out`
/// (atomically, in parallel, in problem order) and prints the throughput.
pub fn write_traces(
    problems: &[(ProblemRecord, Problem)],
    recipe: &Recipe,
    seed: u64,
    threads: usize,
    out: &Path,
) -> Result<Throughput> {
    let what = format!("{} traces", recipe.solver_name());
    let t = generate(problems.len(), threads, &what, out, |i, line| {
        let (rec, p) = &problems[i];
        recipe.write_record(rec, p, seed, i as u64, line);
        Ok(())
    })?;
    eprintln!("{}", t.line(&what, out));
    Ok(t)
}
