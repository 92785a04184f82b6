//! The orchestrator: thread trees of the spawn/join protocol, over a
//! generation [`Backend`] that runs their calls.
//!
//! Each (problem, sample) is a tree of threads. A thread runs calls one
//! after another; the orchestrator submits each call's prompt, and when
//! the backend returns it decides what follows: a
//! call that ends in a spawn block creates its children, whose calls are
//! submitted together ahead of waiting ones, and blocks its thread; when
//! the last child ends, the parent's continuation, built from the
//! children's join messages, is submitted as its next call. Limits, seeds,
//! results and token accounting live here; tensors, KV memory and
//! batching live in the backend.

use crate::backend::native::Native;
use crate::backend::{Backend, CallDone, CallSpec};
use crate::config::RolloutConfig;
use crate::error::{Error, Result};
use crate::result::{CallRecord, FinishReason, ProblemResult};
use crate::sampling::thread_seed;
use crate::stepper::StepModel;
use apr_trace::{Conditioning, TraceTokenizer};
use serde::Serialize;
use std::time::Instant;

mod calls;
mod results;

use calls::AfterCall;
pub use calls::CallEnds;

/// Counters of one engine run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EngineStats {
    /// Forward steps (the native backend) or calls (a server backend).
    pub steps: usize,
    /// Tokens generated.
    pub generated_tokens: usize,
    /// Prompt tokens computed.
    pub prefilled_tokens: usize,
    /// Prompt tokens not computed again: kept from a thread's previous
    /// call, or found in a server's prefix cache.
    pub reused_tokens: usize,
    /// Blocked parents that gave up their slot for waiting threads.
    pub evictions: usize,
    /// Most threads fed in one step (a server backend: most calls
    /// submitted and not yet returned, queued ones included).
    pub max_batch: usize,
    /// Sum over steps of threads fed (mean batch = this / steps; a server
    /// backend: of calls outstanding at each submission).
    pub batch_sum: usize,
    /// Threads run.
    pub threads: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
}

struct Thread {
    task: usize,
    path: Vec<u32>,
    parent: Option<usize>,
    depth: usize,
    prefix: Option<Conditioning>,
    seed: u64,
    /// Why the thread ended, once it has.
    finish: Option<FinishReason>,
    /// The current call's prompt text and ids.
    text: String,
    prompt_ids: Vec<u32>,
    calls: Vec<CallRecord>,
    rounds: Vec<Vec<usize>>,
    pending: usize,
}

struct Task {
    problem: usize,
    sample: usize,
    root: usize,
    start: Option<Instant>,
    latency: f64,
    generated: usize,
    prefilled: usize,
    reused: usize,
}

/// The rollout engine: the orchestrator over a [`Backend`].
pub struct Engine<B: Backend> {
    backend: B,
    cfg: RolloutConfig,
    tok: TraceTokenizer,
    capacity: usize,
    threads: Vec<Thread>,
    tasks: Vec<Task>,
    /// Tasks whose root thread ended and whose result is not built yet.
    finished: Vec<usize>,
    stats: EngineStats,
}

impl<'m, M: StepModel> Engine<Native<'m, M>> {
    /// An engine decoding on `model` with the [`Native`] backend.
    pub fn new(model: &'m mut M, cfg: RolloutConfig) -> Result<Self> {
        Self::with_backend(Native::new(model), cfg)
    }
}

impl<B: Backend> Engine<B> {
    /// An engine running its calls on `backend` under `cfg`.
    pub fn with_backend(backend: B, cfg: RolloutConfig) -> Result<Self> {
        cfg.validate()?;
        let cap = backend.capacity();
        let capacity = match cfg.limits.context {
            0 => cap,
            c => c.min(cap),
        };
        if capacity < 2 {
            return Err(Error::Config(format!("context of {capacity} tokens")));
        }
        Ok(Engine {
            backend,
            cfg,
            tok: TraceTokenizer::new(),
            capacity,
            threads: Vec::new(),
            tasks: Vec::new(),
            finished: Vec::new(),
            stats: EngineStats::default(),
        })
    }

    /// Counters of the last [`Engine::run`].
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// The backend.
    pub fn backend(&mut self) -> &mut B {
        &mut self.backend
    }

    /// Runs `cfg.samples` samples of every problem to the end and returns
    /// their results in (problem, sample) order. `on_done` sees each result
    /// as its tree finishes (for progress bars and streaming output).
    pub fn run<P: apr_trace::Task>(
        &mut self,
        problems: &[P],
        mut on_done: impl FnMut(&ProblemResult),
    ) -> Result<Vec<ProblemResult>> {
        let t0 = Instant::now();
        self.threads.clear();
        self.tasks.clear();
        self.finished.clear();
        let ends = CallEnds::new(&self.cfg, &self.tok, self.capacity);
        self.backend.start(&self.cfg, ends)?;
        for (pi, p) in problems.iter().enumerate() {
            for s in 0..self.cfg.samples {
                let task = self.tasks.len();
                self.tasks.push(Task {
                    problem: pi,
                    sample: s,
                    root: usize::MAX,
                    start: None,
                    latency: 0.0,
                    generated: 0,
                    prefilled: 0,
                    reused: 0,
                });
                let (prefix, prompt) = self.cfg.root_call(p);
                let root = self.new_thread(task, Vec::new(), None, 0, prefix);
                self.tasks[task].root = root;
                self.start_call(root, prompt)?;
            }
        }
        let mut results: Vec<Option<ProblemResult>> = vec![None; self.tasks.len()];
        let mut done = 0;
        while done < self.tasks.len() {
            // A root can end before any call runs (a prompt over the context).
            if self.finished.is_empty() {
                for call in self.backend.wait()? {
                    self.call_ended(call)?;
                }
            }
            for task in std::mem::take(&mut self.finished) {
                let r = self.result(task, problems)?;
                on_done(&r);
                results[task] = Some(r);
                done += 1;
            }
        }
        self.stats = self.backend.stats();
        self.stats.threads = self.threads.len();
        self.stats.seconds = t0.elapsed().as_secs_f64();
        Ok(results.into_iter().flatten().collect())
    }

    fn new_thread(
        &mut self,
        task: usize,
        path: Vec<u32>,
        parent: Option<usize>,
        depth: usize,
        prefix: Option<Conditioning>,
    ) -> usize {
        let (problem, sample) = (self.tasks[task].problem, self.tasks[task].sample);
        let seed = thread_seed(self.cfg.seed, problem, sample, &path);
        self.threads.push(Thread {
            task,
            path,
            parent,
            depth,
            prefix,
            seed,
            finish: None,
            text: String::new(),
            prompt_ids: Vec::new(),
            calls: Vec::new(),
            rounds: Vec::new(),
            pending: 0,
        });
        self.threads.len() - 1
    }

    /// Submits a new call of thread `t` with prompt `text`; a prompt that
    /// fills the context ends the thread instead.
    fn start_call(&mut self, t: usize, text: String) -> Result<()> {
        let th = &mut self.threads[t];
        th.prompt_ids = self.tok.call_ids(th.prefix, &text);
        th.text = text;
        if th.prompt_ids.len() >= self.capacity {
            self.record_call(t, Vec::new(), Vec::new(), 0);
            return self.finish(t, FinishReason::Context);
        }
        let th = &self.threads[t];
        self.backend.submit(CallSpec {
            session: t,
            task: th.task,
            prompt: th.prompt_ids.clone(),
            seed: th.seed,
            index: th.calls.len(),
            // Resumed parents and new children go first: they finish trees.
            first: th.parent.is_some() || !th.calls.is_empty(),
        })
    }

    /// Appends the current call, with what was generated, to the thread's
    /// record.
    fn record_call(&mut self, t: usize, generated: Vec<u32>, logprobs: Vec<f32>, reused: usize) {
        let th = &mut self.threads[t];
        let mut text = std::mem::take(&mut th.text);
        // `decode` skips special tokens (`</s>`).
        text.push_str(&self.tok.decode(&generated));
        th.calls.push(CallRecord {
            text,
            prompt_ids: std::mem::take(&mut th.prompt_ids),
            generated_ids: generated,
            logprobs,
            reused_tokens: reused,
        });
    }

    /// A call ended: count it, then spawn or finish the thread.
    fn call_ended(&mut self, call: CallDone) -> Result<()> {
        let t = call.session;
        if self.threads.get(t).is_none_or(|th| th.finish.is_some()) {
            return Err(Error::Backend(format!("a call of no running thread {t}")));
        }
        let tk = &mut self.tasks[self.threads[t].task];
        if tk.root == t && self.threads[t].calls.is_empty() {
            tk.start = Some(call.started);
        }
        tk.generated += call.generated.len();
        tk.prefilled += call.prefilled;
        tk.reused += call.reused;
        self.record_call(t, call.generated, call.logprobs, call.reused);
        let th = &self.threads[t];
        let text = th.calls.last().map_or("", |c| c.text.as_str());
        let (rounds, depth) = (th.rounds.len(), th.depth);
        let prompts = match calls::after_call(&self.cfg, text, call.finish, rounds, depth) {
            AfterCall::Finish(reason) => return self.finish(t, reason),
            AfterCall::Spawn(prompts) => prompts,
        };
        let (task, round) = (th.task, rounds as u32);
        let mut path = th.path.clone();
        path.push(round);
        let mut kids = Vec::with_capacity(prompts.len());
        for i in 0..prompts.len() {
            let mut p = path.clone();
            p.push(i as u32);
            kids.push(self.new_thread(task, p, Some(t), depth + 1, None));
        }
        let th = &mut self.threads[t];
        th.pending = kids.len();
        th.rounds.push(kids.clone());
        // Children go ahead of waiting calls, in block order.
        for (&k, text) in kids.iter().zip(prompts).rev() {
            self.start_call(k, text)?;
        }
        Ok(())
    }

    /// Ends thread `t`; resumes its parent after its last child.
    fn finish(&mut self, t: usize, reason: FinishReason) -> Result<()> {
        self.backend.end_session(t)?;
        self.threads[t].finish = Some(reason);
        let task = self.threads[t].task;
        let Some(p) = self.threads[t].parent else {
            let tk = &mut self.tasks[task];
            tk.latency = tk.start.map_or(0.0, |s| s.elapsed().as_secs_f64());
            self.finished.push(task);
            return Ok(());
        };
        let parent = &mut self.threads[p];
        parent.pending -= 1;
        if parent.pending > 0 {
            return Ok(());
        }
        let kids = parent.rounds.last().cloned().unwrap_or_default();
        let parent_text = parent
            .calls
            .last()
            .map(|c| c.text.clone())
            .unwrap_or_default();
        let texts: Vec<&str> = kids
            .iter()
            .map(|&k| self.threads[k].calls.last().map_or("", |c| c.text.as_str()))
            .collect();
        match calls::resume_prompt(&self.cfg, &parent_text, &texts) {
            Ok(next) => self.start_call(p, next),
            Err(reason) => self.finish(p, reason),
        }
    }
}
