//! A scripted [`StepModel`] for tests and benches of the scheduler: each
//! slot remembers the tokens fed to it, and the next token is read from the
//! script entry whose prompt starts the slot's history.

use crate::error::{Error, Result};
use crate::stepper::StepModel;
use apr_trace::protocol::{continuation_for, parse_spawn};
use apr_trace::tokenizer::EOS_ID;
use apr_trace::{Conditioning, TraceDict, TraceTokenizer};

/// One scripted call: when a slot's history starts with `prompt`, the
/// model writes `completion` then `</s>`.
#[derive(Clone, Debug)]
struct Entry {
    prompt: Vec<u32>,
    completion: Vec<u32>,
}

/// A model that replays scripted completions. A history no entry matches
/// gets `fallback` forever (a runaway thread).
#[derive(Clone, Debug)]
pub struct ScriptedModel {
    entries: Vec<Entry>,
    history: Vec<Vec<u32>>,
    /// The entry each slot's history last matched (reset on truncation),
    /// checked first so that a step costs one entry, not the script.
    matched: Vec<Option<usize>>,
    capacity: usize,
    vocab: usize,
    fallback: u32,
    /// Most slots fed in one step so far.
    pub max_batch: usize,
    /// Most slots holding tokens at once so far.
    pub max_occupied: usize,
    /// Steps run.
    pub steps: usize,
    /// Tokens fed in all.
    pub fed: usize,
}

impl ScriptedModel {
    /// `slots` slots of `capacity` tokens, no script yet.
    pub fn new(slots: usize, capacity: usize) -> Self {
        let tok = TraceTokenizer::new();
        ScriptedModel {
            entries: Vec::new(),
            history: vec![Vec::new(); slots],
            matched: vec![None; slots],
            capacity,
            vocab: tok.vocab_size(),
            fallback: tok.encode("\n")[0],
            max_batch: 0,
            max_occupied: 0,
            steps: 0,
            fed: 0,
        }
    }

    /// Adds an entry: the call with `prefix` and prompt text `prompt` is
    /// answered with `completion`.
    pub fn with(mut self, prefix: Option<Conditioning>, prompt: &str, completion: &str) -> Self {
        let tok = TraceTokenizer::new();
        self.entries.push(Entry {
            prompt: tok.call_ids(prefix, prompt),
            completion: tok.encode(completion),
        });
        self
    }

    /// Adds an entry with raw token ids: the call with `prefix` and prompt
    /// text `prompt` is answered with `completion` (any ids, special ones
    /// and ones past the tokenizer included), then `</s>`.
    pub fn with_ids(
        mut self,
        prefix: Option<Conditioning>,
        prompt: &str,
        completion: Vec<u32>,
    ) -> Self {
        let tok = TraceTokenizer::new();
        self.entries.push(Entry {
            prompt: tok.call_ids(prefix, prompt),
            completion,
        });
        self
    }

    /// Logits of `vocab` entries (the tokenizer's size by default), as a
    /// model whose embedding is padded past the tokenizer has.
    pub fn with_vocab(mut self, vocab: usize) -> Self {
        self.vocab = vocab;
        self
    }

    /// Adds every call of a thread tree (a solver's `trace_dict`), so that
    /// the engine, run greedily from `prompt`, reproduces the tree: each
    /// call's prompt (first prompt, child prompt, or continuation built by
    /// the protocol) is answered with the rest of that call's text.
    /// Errors when a call does not start with the prompt the protocol gives.
    pub fn with_tree(
        mut self,
        d: &TraceDict,
        prompt: &str,
        prefix: Option<Conditioning>,
    ) -> Result<Self> {
        let bad = |m: String| Error::Step(format!("scripting a tree: {m}"));
        for (k, call) in d.main_calls.iter().enumerate() {
            let p = if k == 0 {
                prompt.to_string()
            } else {
                let kids: Vec<&str> = d.sub_calls[k - 1]
                    .iter()
                    .map(|c| c.main_calls.last().map_or("", String::as_str))
                    .collect();
                continuation_for(&d.main_calls[k - 1], &kids).map_err(|e| bad(e.to_string()))?
            };
            let rest = call
                .strip_prefix(p.as_str())
                .ok_or_else(|| bad(format!("call {k} does not start with its prompt")))?;
            self = self.with(prefix, &p, rest);
            if let Some(round) = d.sub_calls.get(k) {
                let block = parse_spawn(call).map_err(|e| bad(e.to_string()))?;
                for (c, sub) in block.children.iter().zip(round) {
                    self = self.with_tree(sub, &c.render(), None)?;
                }
            }
        }
        Ok(self)
    }

    fn next(&mut self, slot: usize) -> u32 {
        let h = &self.history[slot];
        let fits = |e: &Entry| {
            h.len() >= e.prompt.len()
                && h.starts_with(&e.prompt)
                && e.completion.starts_with(&h[e.prompt.len()..])
        };
        // The remembered entry still fits: only the generated tail grew, so
        // no longer prompt can have started to match.
        let hit = match self.matched[slot] {
            Some(i) if fits(&self.entries[i]) => Some(i),
            _ => self
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| fits(e))
                .max_by_key(|(i, e)| (e.prompt.len(), std::cmp::Reverse(*i)))
                .map(|(i, _)| i),
        };
        self.matched[slot] = hit;
        match hit {
            Some(i) => {
                let e = &self.entries[i];
                e.completion
                    .get(h.len() - e.prompt.len())
                    .copied()
                    .unwrap_or(EOS_ID)
            }
            None => self.fallback,
        }
    }
}

impl StepModel for ScriptedModel {
    fn slots(&self) -> usize {
        self.history.len()
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    fn vocab_size(&self) -> usize {
        self.vocab
    }

    fn step(&mut self, feed: &[(usize, &[u32])]) -> Result<Vec<Vec<f32>>> {
        let mut seen = vec![false; self.history.len()];
        let mut out = Vec::with_capacity(feed.len());
        for &(slot, toks) in feed {
            if slot >= self.history.len() || toks.is_empty() || seen[slot] {
                return Err(Error::Step(format!("bad feed to slot {slot}")));
            }
            seen[slot] = true;
            let h = &mut self.history[slot];
            if h.len() + toks.len() > self.capacity {
                return Err(Error::Step(format!("slot {slot} overflows")));
            }
            h.extend_from_slice(toks);
            self.fed += toks.len();
            let next = self.next(slot);
            let mut l = vec![-10.0f32; self.vocab];
            *l.get_mut(next as usize).ok_or_else(|| {
                Error::Step(format!("scripted id {next} past {} logits", self.vocab))
            })? = 10.0;
            out.push(l);
        }
        self.steps += 1;
        self.max_batch = self.max_batch.max(feed.len());
        let occupied = self.history.iter().filter(|h| !h.is_empty()).count();
        self.max_occupied = self.max_occupied.max(occupied);
        Ok(out)
    }

    fn truncate(&mut self, slot: usize, len: usize) -> Result<()> {
        let h = self
            .history
            .get_mut(slot)
            .ok_or_else(|| Error::Step(format!("slot {slot}")))?;
        h.truncate(len);
        self.matched[slot] = None;
        Ok(())
    }
}

/// A real model's compute with a script's choices: every step runs `inner`
/// (prefill and decode cost as they are), then the logits come from
/// `script`. Benches use it to time spawn/join and prefix reuse on a real
/// model that spawns as the script says.
#[derive(Debug)]
pub struct Overlay<M: StepModel> {
    /// The model whose compute is timed.
    pub inner: M,
    /// The choices.
    pub script: ScriptedModel,
}

impl<M: StepModel> StepModel for Overlay<M> {
    fn slots(&self) -> usize {
        self.inner.slots().min(self.script.slots())
    }

    fn capacity(&self) -> usize {
        self.inner.capacity().min(self.script.capacity())
    }

    fn vocab_size(&self) -> usize {
        self.script.vocab_size()
    }

    fn step(&mut self, feed: &[(usize, &[u32])]) -> Result<Vec<Vec<f32>>> {
        self.inner.step(feed)?;
        self.script.step(feed)
    }

    fn truncate(&mut self, slot: usize, len: usize) -> Result<()> {
        self.inner.truncate(slot, len)?;
        self.script.truncate(slot, len)
    }
}
