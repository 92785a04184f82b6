//! The scheduler: thread lifecycle, continuous batching over KV slots,
//! spawn and join.
//!
//! A thread is *waiting* for a slot, *prefilling* its prompt, *decoding*,
//! *blocked* on its children, or *finished* with a reason. Every step feeds
//! each decoding thread its last token and gives the rest of the step's
//! token budget to prefill chunks, across all problems; threads that finish
//! free their slots for waiting ones at once.
//!
//! A call that ends in a spawn block creates its children (the protocol
//! functions give their prompts) at the front of the queue and blocks its
//! thread, which keeps its slot. When the last child finishes, the parent's
//! continuation is built from the children's join messages; the keys and
//! values of the longest common token prefix of the old and new call are
//! kept and only the rest is prefilled. When every slot is held by a
//! blocked parent and threads are waiting, the blocked parent with the
//! fewest cached tokens gives up its slot (it will prefill its continuation
//! in full): threads wait for memory rather than fail, and cannot deadlock.

use crate::config::RolloutConfig;
use crate::error::{Error, Result};
use crate::result::{CallRecord, FinishReason, ProblemResult};
use crate::sampling::thread_seed;
use crate::stepper::StepModel;
use apr_model::init::SplitMix;
use apr_trace::{Conditioning, TraceTokenizer};
use serde::Serialize;
use std::collections::{BTreeSet, VecDeque};
use std::time::Instant;

mod calls;
mod results;

use calls::{AfterCall, CallEnds};

/// Where a thread is in its lifecycle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ThreadState {
    /// Queued for a KV slot.
    Waiting,
    /// Holds a slot and has prompt tokens left to feed.
    Prefilling,
    /// Holds a slot and generates one token per step.
    Decoding,
    /// Waits for its children (keeps its slot unless evicted).
    Blocked,
    /// Done.
    Finished(FinishReason),
}

/// Counters of one engine run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EngineStats {
    /// Forward steps.
    pub steps: usize,
    /// Tokens generated (one per decoding thread per step).
    pub generated_tokens: usize,
    /// Prompt tokens fed.
    pub prefilled_tokens: usize,
    /// Prompt tokens not fed again thanks to prefix reuse.
    pub reused_tokens: usize,
    /// Blocked parents that gave up their slot for waiting threads.
    pub evictions: usize,
    /// Most threads fed in one step.
    pub max_batch: usize,
    /// Sum over steps of threads fed (mean batch = this / steps).
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
    state: ThreadState,
    slot: Option<usize>,
    /// Tokens of `ids` whose keys and values are in the slot.
    kv_len: usize,
    /// The current call's prompt text.
    text: String,
    /// The current call: prompt then generated tokens.
    ids: Vec<u32>,
    prompt_len: usize,
    logprobs: Vec<f32>,
    reused: usize,
    rng: SplitMix,
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
    tokens: usize,
    generated: usize,
    prefilled: usize,
    reused: usize,
}

/// The rollout engine over a [`StepModel`].
pub struct Engine<'m, M: StepModel> {
    model: &'m mut M,
    cfg: RolloutConfig,
    tok: TraceTokenizer,
    capacity: usize,
    threads: Vec<Thread>,
    tasks: Vec<Task>,
    waiting: VecDeque<usize>,
    free: BTreeSet<usize>,
    /// Tasks whose root thread ended and whose result is not built yet.
    finished: Vec<usize>,
    /// When a call ends, token by token.
    ends: CallEnds,
    stats: EngineStats,
}

impl<'m, M: StepModel> Engine<'m, M> {
    /// An engine running `model` under `cfg`.
    pub fn new(model: &'m mut M, cfg: RolloutConfig) -> Result<Self> {
        cfg.validate()?;
        let cap = model.capacity();
        let capacity = match cfg.limits.context {
            0 => cap,
            c => c.min(cap),
        };
        if capacity < 2 {
            return Err(Error::Config(format!("context of {capacity} tokens")));
        }
        let free = (0..model.slots()).collect();
        let tok = TraceTokenizer::new();
        let ends = CallEnds::new(&cfg, &tok, capacity);
        Ok(Engine {
            model,
            cfg,
            tok,
            capacity,
            threads: Vec::new(),
            tasks: Vec::new(),
            waiting: VecDeque::new(),
            free,
            finished: Vec::new(),
            ends,
            stats: EngineStats::default(),
        })
    }

    /// Counters of the last [`Engine::run`].
    pub fn stats(&self) -> &EngineStats {
        &self.stats
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
        self.waiting.clear();
        self.finished.clear();
        self.stats = EngineStats::default();
        for (pi, p) in problems.iter().enumerate() {
            for s in 0..self.cfg.samples {
                let task = self.tasks.len();
                self.tasks.push(Task {
                    problem: pi,
                    sample: s,
                    root: usize::MAX,
                    start: None,
                    latency: 0.0,
                    tokens: 0,
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
            // A root can end before any step (a prompt over the context).
            if self.finished.is_empty() {
                self.step()?;
            }
            for task in std::mem::take(&mut self.finished) {
                let r = self.result(task, problems)?;
                on_done(&r);
                results[task] = Some(r);
                done += 1;
            }
        }
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
            state: ThreadState::Waiting,
            slot: None,
            kv_len: 0,
            text: String::new(),
            ids: Vec::new(),
            prompt_len: 0,
            logprobs: Vec::new(),
            reused: 0,
            rng: SplitMix::new(seed),
            calls: Vec::new(),
            rounds: Vec::new(),
            pending: 0,
        });
        self.threads.len() - 1
    }

    /// Sets up a new call of thread `t` with prompt `text`, keeping the
    /// cached prefix it shares with the previous call.
    fn start_call(&mut self, t: usize, text: String) -> Result<()> {
        let ids = self.tok.call_ids(self.threads[t].prefix, &text);
        let th = &mut self.threads[t];
        if let Some(slot) = th.slot {
            let keep = if self.cfg.prefix_reuse {
                let lcp = th.ids[..th.kv_len]
                    .iter()
                    .zip(&ids)
                    .take_while(|(a, b)| a == b)
                    .count();
                // At least one token must be fed to get logits.
                lcp.min(ids.len() - 1)
            } else {
                0
            };
            self.model.truncate(slot, keep)?;
            th.kv_len = keep;
        } else {
            th.kv_len = 0;
        }
        th.reused = th.kv_len;
        th.prompt_len = ids.len();
        th.ids = ids;
        th.text = text;
        th.logprobs.clear();
        let task = th.task;
        self.tasks[task].reused += th.reused;
        self.stats.reused_tokens += th.reused;
        if self.threads[t].prompt_len >= self.capacity {
            self.record_call(t);
            return self.finish(t, FinishReason::Context);
        }
        let th = &mut self.threads[t];
        if th.slot.is_some() {
            th.state = ThreadState::Prefilling;
        } else {
            th.state = ThreadState::Waiting;
            // Resumed parents and new children go first: they finish trees.
            if th.parent.is_some() || !th.calls.is_empty() {
                self.waiting.push_front(t);
            } else {
                self.waiting.push_back(t);
            }
        }
        Ok(())
    }

    /// Gives free slots to waiting threads; evicts a blocked parent when
    /// nothing could run otherwise.
    fn admit(&mut self) -> Result<()> {
        loop {
            while !self.waiting.is_empty() {
                let Some(&slot) = self.free.iter().next() else {
                    break;
                };
                let t = self.waiting.pop_front().unwrap_or_default();
                self.free.remove(&slot);
                let th = &mut self.threads[t];
                th.slot = Some(slot);
                th.kv_len = 0;
                th.state = ThreadState::Prefilling;
            }
            let running = self
                .threads
                .iter()
                .any(|t| matches!(t.state, ThreadState::Prefilling | ThreadState::Decoding));
            if running || self.waiting.is_empty() {
                return Ok(());
            }
            // Every slot is held by a blocked parent: free the cheapest.
            let victim = self
                .threads
                .iter()
                .enumerate()
                .filter(|(_, t)| t.state == ThreadState::Blocked && t.slot.is_some())
                .min_by_key(|(i, t)| (t.kv_len, *i))
                .map(|(i, _)| i);
            let Some(v) = victim else {
                return Err(Error::Step(
                    "threads wait but no slot can be freed (0 slots?)".into(),
                ));
            };
            self.release(v)?;
            self.stats.evictions += 1;
        }
    }

    fn release(&mut self, t: usize) -> Result<()> {
        if let Some(slot) = self.threads[t].slot.take() {
            self.model.truncate(slot, 0)?;
            self.free.insert(slot);
        }
        self.threads[t].kv_len = 0;
        Ok(())
    }

    /// One forward step; tasks whose root ends go to `finished`.
    fn step(&mut self) -> Result<()> {
        self.admit()?;
        let mut decode = Vec::new();
        let mut prefill = Vec::new();
        for (i, t) in self.threads.iter().enumerate() {
            match t.state {
                ThreadState::Decoding => decode.push(i),
                ThreadState::Prefilling => prefill.push(i),
                _ => {}
            }
        }
        let mut budget = self.cfg.step_tokens.saturating_sub(decode.len());
        let mut plan: Vec<(usize, usize, usize)> = Vec::new(); // thread, from, to
        for &t in &decode {
            let th = &self.threads[t];
            plan.push((t, th.kv_len, th.ids.len()));
        }
        for &t in &prefill {
            if budget == 0 && !plan.is_empty() {
                break;
            }
            let th = &self.threads[t];
            let n = (th.prompt_len - th.kv_len).min(budget.max(1));
            budget = budget.saturating_sub(n);
            plan.push((t, th.kv_len, th.kv_len + n));
        }
        if plan.is_empty() {
            return Err(Error::Step("no thread can run".into()));
        }
        let feed: Vec<(usize, &[u32])> = plan
            .iter()
            .map(|&(t, a, b)| {
                let th = &self.threads[t];
                (th.slot.unwrap_or(usize::MAX), &th.ids[a..b])
            })
            .collect();
        let logits = self.model.step(&feed)?;
        if logits.len() != plan.len() {
            return Err(Error::Step(format!(
                "{} logits for {} rows",
                logits.len(),
                plan.len()
            )));
        }
        self.stats.steps += 1;
        self.stats.batch_sum += plan.len();
        self.stats.max_batch = self.stats.max_batch.max(plan.len());
        for (&(t, a, b), row) in plan.iter().zip(logits) {
            let fed = b - a;
            let task = self.threads[t].task;
            {
                let tk = &mut self.tasks[task];
                tk.start.get_or_insert_with(Instant::now);
                tk.tokens += fed;
                if self.threads[t].state == ThreadState::Prefilling {
                    tk.prefilled += fed;
                    self.stats.prefilled_tokens += fed;
                }
            }
            let th = &mut self.threads[t];
            th.kv_len = b;
            if th.kv_len < th.ids.len() {
                continue; // more prompt to prefill
            }
            if row.len() != self.model.vocab_size() {
                return Err(Error::Step(format!("{} logits per row", row.len())));
            }
            let (tok, lp) = self.cfg.sampling.pick(&row, &mut th.rng);
            th.ids.push(tok);
            th.logprobs.push(lp);
            th.state = ThreadState::Decoding;
            let tk = &mut self.tasks[task];
            tk.generated += 1;
            self.stats.generated_tokens += 1;
            let end = self
                .ends
                .after_token(&self.tok, &th.ids, th.prompt_len, tk.tokens);
            if let Some(reason) = end {
                self.end_call(t, reason)?;
            }
        }
        Ok(())
    }

    /// Appends the current call to the thread's record.
    fn record_call(&mut self, t: usize) {
        let th = &mut self.threads[t];
        let gen = &th.ids[th.prompt_len..];
        let mut text = std::mem::take(&mut th.text);
        // `decode` skips special tokens (`</s>`).
        text.push_str(&self.tok.decode(gen));
        th.calls.push(CallRecord {
            text,
            prompt_ids: th.ids[..th.prompt_len].to_vec(),
            generated_ids: gen.to_vec(),
            logprobs: std::mem::take(&mut th.logprobs),
            reused_tokens: th.reused,
        });
    }

    /// A call ended: spawn, or finish the thread.
    fn end_call(&mut self, t: usize, reason: FinishReason) -> Result<()> {
        self.record_call(t);
        let th = &self.threads[t];
        let text = th.calls.last().map_or("", |c| c.text.as_str());
        let prompts = match calls::after_call(&self.cfg, text, reason, th.rounds.len(), th.depth) {
            AfterCall::Finish(reason) => return self.finish(t, reason),
            AfterCall::Spawn(prompts) => prompts,
        };
        let (task, depth, round) = (th.task, th.depth, th.rounds.len() as u32);
        let mut path = th.path.clone();
        path.push(round);
        let mut kids = Vec::with_capacity(prompts.len());
        for i in 0..prompts.len() {
            let mut p = path.clone();
            p.push(i as u32);
            kids.push(self.new_thread(task, p, Some(t), depth + 1, None));
        }
        let th = &mut self.threads[t];
        th.state = ThreadState::Blocked;
        th.pending = kids.len();
        th.rounds.push(kids.clone());
        if !self.cfg.prefix_reuse {
            self.release(t)?;
        }
        // Children go to the front of the queue, in block order.
        for (k, text) in kids.iter().zip(prompts).rev() {
            let th = &mut self.threads[*k];
            let ids = self.tok.call_ids(None, &text);
            th.text = text;
            th.prompt_len = ids.len();
            th.ids = ids;
            if th.prompt_len >= self.capacity {
                self.record_call(*k);
                self.finish(*k, FinishReason::Context)?;
                continue;
            }
            self.waiting.push_front(*k);
        }
        Ok(())
    }

    /// Ends thread `t`; frees its slot; resumes its parent after its last child.
    fn finish(&mut self, t: usize, reason: FinishReason) -> Result<()> {
        self.release(t)?;
        self.waiting.retain(|&w| w != t);
        self.threads[t].state = ThreadState::Finished(reason);
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
