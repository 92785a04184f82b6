//! The native backend: continuous batching of calls over the KV slots of
//! a [`StepModel`].
//!
//! A call is *waiting* for a slot, *prefilling* its prompt or *decoding*;
//! a session whose call ended keeps its slot (*idle*) until the
//! orchestrator ends it or submits its next call. Every step feeds each
//! decoding call its last token and gives the rest of the step's token
//! budget to prefill chunks, across all sessions; calls that end free
//! nothing until the orchestrator decides, and waiting calls take free
//! slots at the next step.
//!
//! A session's next call keeps the keys and values of the longest common
//! token prefix of its last call and the new prompt; only the rest is
//! prefilled. When every slot is held by an idle session and calls are
//! waiting, the idle session with the fewest cached tokens gives up its
//! slot (its next call prefills in full): calls wait for memory rather
//! than fail, and cannot deadlock. Each session keeps its sampler's
//! generator, seeded by its first call, across its calls.

use super::{Backend, CallDone, CallEnds, CallSpec};
use crate::config::RolloutConfig;
use crate::engine::EngineStats;
use crate::error::{Error, Result};
use crate::sampling::SamplingParams;
use crate::stepper::StepModel;
use apr_model::init::SplitMix;
use apr_trace::TraceTokenizer;
use std::collections::{BTreeSet, VecDeque};
use std::time::Instant;

/// Where a session's call is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// No call in flight.
    Idle,
    /// Queued for a slot.
    Waiting,
    /// Holds a slot and has prompt tokens left to feed.
    Prefilling,
    /// Holds a slot and generates one token per step.
    Decoding,
}

#[derive(Debug)]
struct Session {
    task: usize,
    state: State,
    slot: Option<usize>,
    /// Tokens of `ids` whose keys and values are in the slot.
    kv_len: usize,
    /// The current call: prompt then generated tokens.
    ids: Vec<u32>,
    prompt_len: usize,
    logprobs: Vec<f32>,
    reused: usize,
    prefilled: usize,
    started: Option<Instant>,
    rng: SplitMix,
}

/// Calls decoded in batched steps of a [`StepModel`].
pub struct Native<'m, M: StepModel> {
    model: &'m mut M,
    tok: TraceTokenizer,
    sampling: SamplingParams,
    step_tokens: usize,
    prefix_reuse: bool,
    ends: Option<CallEnds>,
    sessions: Vec<Option<Session>>,
    /// Sessions prefilling or decoding, in session order (a step's order).
    running: BTreeSet<usize>,
    waiting: VecDeque<usize>,
    free: BTreeSet<usize>,
    /// Tokens fed per task (the problem budget's count).
    task_tokens: Vec<usize>,
    stats: EngineStats,
}

impl<'m, M: StepModel> Native<'m, M> {
    /// A backend decoding on `model`.
    pub fn new(model: &'m mut M) -> Self {
        let free = (0..model.slots()).collect();
        Native {
            model,
            tok: TraceTokenizer::new(),
            sampling: SamplingParams::default(),
            step_tokens: 1,
            prefix_reuse: true,
            ends: None,
            sessions: Vec::new(),
            running: BTreeSet::new(),
            waiting: VecDeque::new(),
            free,
            task_tokens: Vec::new(),
            stats: EngineStats::default(),
        }
    }

    fn session(&mut self, s: usize) -> Result<&mut Session> {
        self.sessions
            .get_mut(s)
            .and_then(Option::as_mut)
            .ok_or_else(|| Error::Backend(format!("no session {s}")))
    }

    /// Frees session `s`'s slot, if it holds one.
    fn release(&mut self, s: usize) -> Result<()> {
        let se = self.session(s)?;
        se.kv_len = 0;
        if let Some(slot) = se.slot.take() {
            self.model.truncate(slot, 0)?;
            self.free.insert(slot);
        }
        Ok(())
    }

    /// Gives free slots to waiting calls; evicts an idle session when
    /// nothing could run otherwise.
    fn admit(&mut self) -> Result<()> {
        loop {
            while !self.waiting.is_empty() {
                let Some(&slot) = self.free.iter().next() else {
                    break;
                };
                let s = self.waiting.pop_front().unwrap_or_default();
                self.free.remove(&slot);
                let se = self.session(s)?;
                se.slot = Some(slot);
                se.kv_len = 0;
                se.state = State::Prefilling;
                self.running.insert(s);
            }
            if !self.running.is_empty() || self.waiting.is_empty() {
                return Ok(());
            }
            // Every slot is held by an idle session: free the cheapest.
            let victim = self
                .sessions
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.as_ref().map(|s| (i, s)))
                .filter(|(_, s)| s.state == State::Idle && s.slot.is_some())
                .min_by_key(|(i, s)| (s.kv_len, *i))
                .map(|(i, _)| i);
            let Some(v) = victim else {
                return Err(Error::Step(
                    "calls wait but no slot can be freed (0 slots?)".into(),
                ));
            };
            self.release(v)?;
            self.stats.evictions += 1;
        }
    }

    /// One forward step; returns the calls that ended, in step order.
    fn step(&mut self) -> Result<Vec<CallDone>> {
        self.admit()?;
        let (mut decode, mut prefill) = (Vec::new(), Vec::new());
        for &s in &self.running {
            match self.sessions[s].as_ref().map(|s| s.state) {
                Some(State::Decoding) => decode.push(s),
                Some(State::Prefilling) => prefill.push(s),
                _ => {}
            }
        }
        let mut budget = self.step_tokens.saturating_sub(decode.len());
        let mut plan: Vec<(usize, usize, usize)> = Vec::new(); // session, from, to
        for &s in &decode {
            let se = self.sessions[s]
                .as_ref()
                .ok_or(Error::Step("lost".into()))?;
            plan.push((s, se.kv_len, se.ids.len()));
        }
        for &s in &prefill {
            if budget == 0 && !plan.is_empty() {
                break;
            }
            let se = self.sessions[s]
                .as_ref()
                .ok_or(Error::Step("lost".into()))?;
            let n = (se.prompt_len - se.kv_len).min(budget.max(1));
            budget = budget.saturating_sub(n);
            plan.push((s, se.kv_len, se.kv_len + n));
        }
        if plan.is_empty() {
            return Err(Error::Step("no call can run".into()));
        }
        let logits = {
            let sessions = &self.sessions;
            let feed: Vec<(usize, &[u32])> = plan
                .iter()
                .filter_map(|&(s, a, b)| sessions[s].as_ref().map(|se| (se, a, b)))
                .map(|(se, a, b)| (se.slot.unwrap_or(usize::MAX), &se.ids[a..b]))
                .collect();
            self.model.step(&feed)?
        };
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
        let vocab = self.model.vocab_size();
        let ends = self
            .ends
            .as_ref()
            .ok_or(Error::Step("not started".into()))?;
        let mut done = Vec::new();
        for (&(s, a, b), row) in plan.iter().zip(logits) {
            let fed = b - a;
            let Some(se) = self.sessions[s].as_mut() else {
                continue;
            };
            se.started.get_or_insert_with(Instant::now);
            self.task_tokens[se.task] += fed;
            if se.state == State::Prefilling {
                se.prefilled += fed;
                self.stats.prefilled_tokens += fed;
            }
            se.kv_len = b;
            if se.kv_len < se.ids.len() {
                continue; // more prompt to prefill
            }
            if row.len() != vocab {
                return Err(Error::Step(format!("{} logits per row", row.len())));
            }
            let (tok, lp) = self.sampling.pick(&row, &mut se.rng);
            se.ids.push(tok);
            se.logprobs.push(lp);
            se.state = State::Decoding;
            self.stats.generated_tokens += 1;
            let problem_tokens = self.task_tokens[se.task];
            let Some(finish) = ends.after_token(&self.tok, &se.ids, se.prompt_len, problem_tokens)
            else {
                continue;
            };
            se.state = State::Idle;
            self.running.remove(&s);
            done.push(CallDone {
                session: s,
                generated: se.ids[se.prompt_len..].to_vec(),
                logprobs: std::mem::take(&mut se.logprobs),
                finish,
                reused: se.reused,
                prefilled: se.prefilled,
                started: se.started.unwrap_or_else(Instant::now),
            });
        }
        if !self.prefix_reuse {
            for d in &done {
                self.release(d.session)?;
            }
        }
        Ok(done)
    }
}

impl<M: StepModel> Backend for Native<'_, M> {
    fn name(&self) -> &'static str {
        "native"
    }

    fn capacity(&self) -> usize {
        self.model.capacity()
    }

    fn start(&mut self, cfg: &RolloutConfig, ends: CallEnds) -> Result<()> {
        for s in 0..self.sessions.len() {
            if self.sessions[s].is_some() {
                self.release(s)?;
            }
        }
        self.sessions.clear();
        self.running.clear();
        self.waiting.clear();
        self.task_tokens.clear();
        self.sampling = cfg.sampling.clone();
        self.step_tokens = cfg.step_tokens;
        self.prefix_reuse = cfg.prefix_reuse;
        self.ends = Some(ends);
        self.stats = EngineStats::default();
        Ok(())
    }

    fn submit(&mut self, call: CallSpec) -> Result<()> {
        let s = call.session;
        if self.sessions.len() <= s {
            self.sessions.resize_with(s + 1, || None);
        }
        if self.task_tokens.len() <= call.task {
            self.task_tokens.resize(call.task + 1, 0);
        }
        let se = self.sessions[s].get_or_insert_with(|| Session {
            task: call.task,
            state: State::Idle,
            slot: None,
            kv_len: 0,
            ids: Vec::new(),
            prompt_len: 0,
            logprobs: Vec::new(),
            reused: 0,
            prefilled: 0,
            started: None,
            rng: SplitMix::new(call.seed),
        });
        if se.state != State::Idle {
            return Err(Error::Backend(format!("session {s} has a call in flight")));
        }
        if call.prompt.is_empty() {
            return Err(Error::Backend(format!("session {s}: empty prompt")));
        }
        let ids = call.prompt;
        if let Some(slot) = se.slot {
            let keep = if self.prefix_reuse {
                let lcp = se.ids[..se.kv_len]
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
            se.kv_len = keep;
        } else {
            se.kv_len = 0;
        }
        se.reused = se.kv_len;
        se.prefilled = 0;
        se.started = None;
        se.prompt_len = ids.len();
        se.ids = ids;
        se.logprobs.clear();
        self.stats.reused_tokens += se.reused;
        if se.slot.is_some() {
            se.state = State::Prefilling;
            self.running.insert(s);
        } else {
            se.state = State::Waiting;
            if call.first {
                self.waiting.push_front(s);
            } else {
                self.waiting.push_back(s);
            }
        }
        Ok(())
    }

    fn wait(&mut self) -> Result<Vec<CallDone>> {
        loop {
            if self.running.is_empty() && self.waiting.is_empty() {
                return Err(Error::Backend("waiting with no call in flight".into()));
            }
            let done = self.step()?;
            if !done.is_empty() {
                return Ok(done);
            }
        }
    }

    fn end_session(&mut self, session: usize) -> Result<()> {
        if self.sessions.get(session).is_some_and(Option::is_some) {
            self.release(session)?;
            self.waiting.retain(|&w| w != session);
            self.running.remove(&session);
            self.sessions[session] = None;
        }
        Ok(())
    }

    fn stats(&self) -> EngineStats {
        self.stats.clone()
    }
}
