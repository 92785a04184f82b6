//! The server backend: each call on a vLLM or SGLang server
//! ([`apr_serve::ServerPool`]), many in flight at once.
//!
//! A server returns whole calls, so the call's ids are replayed through
//! [`CallEnds::after_token`] and cut where the native backend would have
//! stopped. Where the semantics differ (`docs/scale-out.md`):
//! - the problem's token budget (`limits.max_problem_tokens`) counts the
//!   tokens of the problem's calls that have returned, and each call's
//!   token limit is capped when it is submitted, so calls of one problem
//!   running at once can pass the budget where the native backend, which
//!   counts token by token, would have stopped them;
//! - the join block's opening and special tokens are stop strings and
//!   stop ids, so the server stops where the native backend does;
//! - the reuse of a thread's keys and values between its calls is the
//!   server's prefix cache, and reported as what the server says it found
//!   there ([`CacheStats`]);
//! - a sampled call's seed is the thread's seed mixed with the call's
//!   index, so sampled rollouts repeat on the same server but differ from
//!   the native backend's; greedy rollouts match it up to floating-point
//!   ties.
//!
//! A call that fails after the pool's retries fails the run with
//! [`Error::Server`].

use super::{Backend, CallDone, CallEnds, CallSpec};
use crate::config::{Mode, RolloutConfig};
use crate::engine::EngineStats;
use crate::error::{Error, Result};
use crate::result::FinishReason;
use apr_model::init::SplitMix;
use apr_serve::{CallRequest, Finish, Sampling, ServerPool};
use apr_trace::protocol::JOIN_OPEN;
use apr_trace::tokenizer::{EOS_ID, SPECIAL_TOKENS};
use apr_trace::TraceTokenizer;
use serde::Serialize;
use std::collections::HashMap;
use std::time::Instant;

/// What a server's prefix cache held, as the server reports it per call
/// (vLLM: `usage.prompt_tokens_details.cached_tokens`, with
/// `--enable-prompt-tokens-details`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CacheStats {
    /// Calls whose response reported cached tokens.
    pub reported_calls: usize,
    /// Prompt tokens of every call.
    pub prompt_tokens: usize,
    /// Of those, found in the cache.
    pub cached_tokens: usize,
    /// Prompt tokens of parents' continuations after a join.
    pub join_prompt_tokens: usize,
    /// Of those, found in the cache.
    pub join_cached_tokens: usize,
}

impl CacheStats {
    /// Cached over prompt tokens of the calls after a join (0 when none).
    pub fn join_hit_rate(&self) -> f64 {
        self.join_cached_tokens as f64 / self.join_prompt_tokens.max(1) as f64
    }

    /// Cached over prompt tokens of every call (0 when none).
    pub fn hit_rate(&self) -> f64 {
        self.cached_tokens as f64 / self.prompt_tokens.max(1) as f64
    }
}

/// A call submitted and not yet returned.
#[derive(Debug)]
struct Pending {
    task: usize,
    prompt: Vec<u32>,
    join: bool,
    submitted: Instant,
}

/// Calls run on serving engines.
pub struct Server {
    pool: ServerPool,
    capacity: usize,
    vocab: usize,
    tok: TraceTokenizer,
    ends: Option<CallEnds>,
    sampling: Sampling,
    stop: Vec<String>,
    stop_ids: Vec<u32>,
    max_new_tokens: usize,
    max_problem_tokens: usize,
    pending: HashMap<usize, Pending>,
    task_tokens: Vec<usize>,
    stats: EngineStats,
    cache: CacheStats,
}

impl Server {
    /// A backend calling `pool`'s servers, which serve a model of `vocab`
    /// ids whose calls hold at most `capacity` tokens.
    pub fn new(pool: ServerPool, capacity: usize, vocab: usize) -> Self {
        Server {
            pool,
            capacity,
            vocab,
            tok: TraceTokenizer::new(),
            ends: None,
            sampling: Sampling::GREEDY,
            stop: Vec::new(),
            stop_ids: Vec::new(),
            max_new_tokens: 1,
            max_problem_tokens: 0,
            pending: HashMap::new(),
            task_tokens: Vec::new(),
            stats: EngineStats::default(),
            cache: CacheStats::default(),
        }
    }

    /// The pool (to reload weights between runs).
    pub fn pool(&mut self) -> &mut ServerPool {
        &mut self.pool
    }

    /// The prefix cache's counters since [`Backend::start`].
    pub fn cache_stats(&self) -> &CacheStats {
        &self.cache
    }

    /// A returned call, cut where the rules end it.
    fn ended(&mut self, session: usize, resp: apr_serve::CallResponse) -> Result<CallDone> {
        let p = self
            .pending
            .remove(&session)
            .ok_or_else(|| Error::Backend(format!("a response for no call ({session})")))?;
        let ends = self
            .ends
            .as_ref()
            .ok_or(Error::Step("not started".into()))?;
        let prompt_len = p.prompt.len();
        let cached = resp.cached_prompt_tokens.unwrap_or(0).min(prompt_len);
        let prefilled = prompt_len - cached;
        let before = self.task_tokens[p.task];
        let mut ids = p.prompt;
        let mut finish = None;
        for (i, &id) in resp.ids.iter().enumerate() {
            ids.push(id);
            finish = ends.after_token(&self.tok, &ids, prompt_len, before + prefilled + i);
            if finish.is_some() {
                break;
            }
        }
        let finish = finish.unwrap_or(match resp.finish {
            Finish::StopString(_) => FinishReason::WroteJoin,
            Finish::StopToken(id) if id == EOS_ID => FinishReason::Eos,
            Finish::StopToken(id) => FinishReason::BadToken(format!("stop id {id}")),
            Finish::Length => FinishReason::MaxNewTokens,
        });
        let generated = ids.split_off(prompt_len);
        let mut logprobs = resp.logprobs;
        logprobs.truncate(generated.len());
        self.task_tokens[p.task] += prefilled + generated.len();
        self.stats.generated_tokens += generated.len();
        self.stats.prefilled_tokens += prefilled;
        self.stats.reused_tokens += cached;
        if resp.cached_prompt_tokens.is_some() {
            self.cache.reported_calls += 1;
        }
        self.cache.prompt_tokens += prompt_len;
        self.cache.cached_tokens += cached;
        if p.join {
            self.cache.join_prompt_tokens += prompt_len;
            self.cache.join_cached_tokens += cached;
        }
        Ok(CallDone {
            session,
            generated,
            logprobs,
            finish,
            reused: cached,
            prefilled,
            started: p.submitted,
        })
    }
}

impl Backend for Server {
    fn name(&self) -> &'static str {
        self.pool.name()
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    fn start(&mut self, cfg: &RolloutConfig, ends: CallEnds) -> Result<()> {
        if cfg.ignore_eos {
            return Err(Error::Config(
                "ignore_eos runs only on the native backend".into(),
            ));
        }
        if self.pool.in_flight() > 0 {
            return Err(Error::Backend("a run started with calls in flight".into()));
        }
        let s = &cfg.sampling;
        if s.logit_scale() != 1.0 {
            return Err(Error::Config(
                "tempered log-probabilities (sampling.logprobs = \"tempered\") run only on the \
                 native backend: servers return the model's own"
                    .into(),
            ));
        }
        self.sampling = if s.temperature <= 0.0 || s.top_k == 1 {
            Sampling::GREEDY
        } else {
            Sampling {
                temperature: s.temperature as f32,
                top_k: s.top_k,
                top_p: s.top_p as f32,
            }
        };
        self.stop = match cfg.mode {
            Mode::Apr => vec![JOIN_OPEN.to_string()],
            Mode::Single => Vec::new(),
        };
        // Every special token ends a call (`</s>` normally, the others as
        // bad tokens), as on the native backend.
        self.stop_ids = (0..SPECIAL_TOKENS.len() as u32).collect();
        self.max_new_tokens = cfg.limits.max_new_tokens;
        self.max_problem_tokens = cfg.limits.max_problem_tokens;
        self.ends = Some(ends);
        self.pending.clear();
        self.task_tokens.clear();
        self.stats = EngineStats::default();
        self.cache = CacheStats::default();
        Ok(())
    }

    fn submit(&mut self, call: CallSpec) -> Result<()> {
        if self.pending.contains_key(&call.session) {
            return Err(Error::Backend(format!(
                "session {} has a call in flight",
                call.session
            )));
        }
        if self.task_tokens.len() <= call.task {
            self.task_tokens.resize(call.task + 1, 0);
        }
        let room = self.capacity.saturating_sub(call.prompt.len());
        let mut max_new = self.max_new_tokens.min(room).max(1);
        if self.max_problem_tokens > 0 {
            // Enough for the budget even with the whole prompt cached; the
            // replay cuts the call where the budget ends.
            let left = self
                .max_problem_tokens
                .saturating_sub(self.task_tokens[call.task]);
            max_new = max_new.min(left + 1);
        }
        let seed =
            SplitMix::new(call.seed ^ (call.index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
                .next_u64();
        let req = CallRequest {
            prompt: call.prompt.clone(),
            stop: self.stop.clone(),
            stop_ids: self.stop_ids.clone(),
            max_new_tokens: max_new,
            sampling: self.sampling,
            seed,
            vocab: self.vocab,
        };
        self.pool.submit(call.session as u64, req)?;
        self.stats.steps += 1;
        self.stats.max_batch = self.stats.max_batch.max(self.pool.in_flight());
        self.stats.batch_sum += self.pool.in_flight();
        self.pending.insert(
            call.session,
            Pending {
                task: call.task,
                prompt: call.prompt,
                join: call.index > 0,
                submitted: Instant::now(),
            },
        );
        Ok(())
    }

    fn wait(&mut self) -> Result<Vec<CallDone>> {
        let mut out = Vec::new();
        for (id, got) in self.pool.wait()? {
            out.push(self.ended(id as usize, got?)?);
        }
        Ok(out)
    }

    fn end_session(&mut self, _session: usize) -> Result<()> {
        Ok(())
    }

    fn stats(&self) -> EngineStats {
        self.stats.clone()
    }
}
