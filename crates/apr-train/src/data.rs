//! Training sequences from trace files, and length-bucketed batches.
//!
//! APR records give one sequence per call of every thread; SoS+ records
//! give one sequence, the search path. Each sequence is `<s> tokens </s>`,
//! cut to the context window. Under [`ConditioningMode::Budget`] the
//! root's calls start with the mode's budget prefix (APR `Sub Call Budget:
//! n `, n the problem's child-thread count; SoS+ `Token Budget: B `, B the
//! trace's token count rounded up to the bin, in our tokenizer's units);
//! under [`ConditioningMode::None`] no sequence has a prefix.
//!
//! The first sequence of a record (APR: the root's first call; SoS+: the
//! search path) is built from the root prompt the rollout engine feeds
//! ([`apr_trace::TraceMode::root_prompt`]): `<s>`, the prefix and the
//! prompt, then the rest of the text, so the engine's prompt is by
//! construction a token prefix of what the model is trained on.

use crate::config::{ConditioningMode, DataConfig, TraceKind};
use crate::error::{Error, Result};
use apr_countdown::TraceRecord;
use apr_model::init::SplitMix;
use apr_trace::tokenizer::EOS_ID;
use apr_trace::{Conditioning, TraceDict, TraceTokenizer};
use std::io::BufRead;
use std::path::Path;

/// Reads trace records (JSON Lines) from a file.
pub fn read_traces(path: &Path, limit: Option<usize>) -> Result<Vec<TraceRecord>> {
    Ok(read_numbered(path, limit)?
        .into_iter()
        .map(|(_, r)| r)
        .collect())
}

/// [`read_traces`] with each record's 1-based line number.
fn read_numbered(path: &Path, limit: Option<usize>) -> Result<Vec<(usize, TraceRecord)>> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        if limit.is_some_and(|n| out.len() >= n) {
            break;
        }
        let line = line.map_err(|e| Error::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let r: TraceRecord = serde_json::from_str(&line).map_err(|e| Error::Data {
            path: path.into(),
            record: i + 1,
            reason: e.to_string(),
        })?;
        out.push((i + 1, r));
    }
    if out.is_empty() {
        return Err(Error::Data {
            path: path.into(),
            record: 0,
            reason: "no records".into(),
        });
    }
    Ok(out)
}

/// A training sequence: [`TraceTokenizer::call_ids`], `</s>`, cut to `max_len`.
fn tokens(
    tok: &TraceTokenizer,
    prefix: Option<Conditioning>,
    text: &str,
    max_len: usize,
) -> Vec<u32> {
    let mut ids = tok.call_ids(prefix, text);
    ids.push(EOS_ID);
    ids.truncate(max_len);
    ids
}

/// A record's root sequence: the ids of its root prompt as the engine
/// feeds them, then the rest of `text`, `</s>`, cut to `max_len`. An error
/// when `text` does not start with the prompt.
fn root_tokens(
    tok: &TraceTokenizer,
    r: &TraceRecord,
    kind: TraceKind,
    prefix: Option<Conditioning>,
    text: &str,
    max_len: usize,
) -> Result<Vec<u32>> {
    let prompt = kind.mode().root_prompt(r.target, &r.nums);
    let rest = text.strip_prefix(&prompt).ok_or_else(|| {
        bad_record(
            r,
            format!(
                "the {} root call does not start with its root prompt {prompt:?}",
                kind.mode()
            ),
        )
    })?;
    let mut ids = tok.call_ids(prefix, &prompt);
    ids.extend(tok.encode(rest));
    ids.push(EOS_ID);
    ids.truncate(max_len);
    Ok(ids)
}

fn bad_record(r: &TraceRecord, reason: String) -> Error {
    Error::Record {
        problem: format!("target {} nums {:?}", r.target, r.nums),
        reason,
    }
}

/// Child threads of a `trace_dict`: every entry of every spawn round, at
/// every depth.
fn child_threads(d: &TraceDict) -> usize {
    // The count does not depend on the token counter.
    apr_trace::dict_stats(d, &|_| 0).child_threads
}

/// The budget a record's root calls are conditioned on under
/// [`ConditioningMode::Budget`]: APR the child-thread count (the record's
/// `child_thread_count`, else counted in its `trace_dict`, else 0); SoS+
/// the trace's token count (`token_count`, else the search path's tokens
/// plus `<s>` and `</s>`) rounded up to `token_budget_bin`, at most 4096.
pub fn record_budget(
    r: &TraceRecord,
    kind: TraceKind,
    token_budget_bin: u32,
    tok: &TraceTokenizer,
) -> u32 {
    match kind {
        TraceKind::Apr => r
            .child_thread_count
            .or_else(|| r.trace_dict.as_ref().map(child_threads))
            .unwrap_or(0) as u32,
        TraceKind::Sosp => {
            let n = r
                .token_count
                .unwrap_or_else(|| tok.count(&r.search_path) + 2);
            match Conditioning::token_budget_for(n, token_budget_bin, 4096) {
                Conditioning::TokenBudget(b) | Conditioning::SubCallBudget(b) => b,
            }
        }
    }
}

/// The root calls' prefix of a record under `cfg`.
fn root_prefix(
    r: &TraceRecord,
    kind: TraceKind,
    cfg: &DataConfig,
    tok: &TraceTokenizer,
) -> Option<Conditioning> {
    match cfg.conditioning {
        ConditioningMode::None => None,
        ConditioningMode::Budget => {
            Some(
                kind.mode()
                    .conditioning(record_budget(r, kind, cfg.token_budget_bin, tok)),
            )
        }
    }
}

fn dict_calls(
    d: &TraceDict,
    top: bool,
    budget: Option<Conditioning>,
    out: &mut Vec<(Option<Conditioning>, String)>,
) {
    for c in &d.main_calls {
        out.push((if top { budget } else { None }, c.clone()));
    }
    for round in &d.sub_calls {
        for child in round {
            dict_calls(child, false, None, out);
        }
    }
}

/// A training sequence of a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sequence {
    /// `<s>`, the text's tokens and `</s>`, cut to the context window.
    pub ids: Vec<u32>,
    /// Index of the first token that carries loss: target `k` carries
    /// loss when `k >= max(loss_from, 1)`.
    pub loss_from: usize,
    /// In an APR parent's continuation, the index of the first token after
    /// its join block (what the parent writes itself, weighted by
    /// [`DataConfig::continuation_weight`]); `None` in other calls.
    pub continuation_from: Option<usize>,
}

/// Where a call's loss starts (after the join block of a parent's
/// continuation, which the engine inserts at rollout time with its
/// pre-spawn text; 0, every token, for other calls and when
/// `cfg.loss_on_inserted`) and where its continuation starts (the join
/// block's end, or `None`). `None` when the prompt's tokens are not a
/// prefix of `ids` (cut at `max_len` inside the prompt).
fn loss_from(
    tok: &TraceTokenizer,
    prefix: Option<Conditioning>,
    text: &str,
    ids: &[u32],
    cfg: &DataConfig,
) -> Option<(usize, Option<usize>)> {
    const END: &str = "<End Sub Searches>\n";
    let Some(at) = text.rfind(END) else {
        return Some((0, None));
    };
    let prompt = tok.call_ids(prefix, &text[..at + END.len()]);
    if !ids.starts_with(&prompt) {
        return cfg.loss_on_inserted.then_some((0, None));
    }
    let from = if cfg.loss_on_inserted {
        0
    } else {
        prompt.len()
    };
    Some((from, Some(prompt.len())))
}

/// The training sequences of one record. Sequences with no token carrying
/// loss (a continuation cut at `max_len` inside its prompt) are left out.
/// An error when the record's root call does not start with its root
/// prompt ([`Error::Record`]).
pub fn sequences(
    r: &TraceRecord,
    kind: TraceKind,
    cfg: &DataConfig,
    tok: &TraceTokenizer,
    max_len: usize,
) -> Result<Vec<Sequence>> {
    let prefix = root_prefix(r, kind, cfg, tok);
    // The root's calls, the first one first; a record without a
    // `trace_dict` is its search path alone.
    let mut calls = Vec::new();
    match (&r.trace_dict, kind) {
        (Some(d), TraceKind::Apr) => {
            if d.main_calls.is_empty() {
                return Err(bad_record(r, "its trace_dict has no root call".into()));
            }
            dict_calls(d, true, prefix, &mut calls)
        }
        _ => calls.push((prefix, r.search_path.clone())),
    }
    let mut out = Vec::with_capacity(calls.len());
    for (i, (p, text)) in calls.iter().enumerate() {
        let ids = if i == 0 {
            root_tokens(tok, r, kind, *p, text, max_len)?
        } else {
            tokens(tok, *p, text, max_len)
        };
        match loss_from(tok, *p, text, &ids, cfg) {
            Some((from, cont)) if from.max(1) < ids.len() => out.push(Sequence {
                ids,
                loss_from: from,
                continuation_from: cont,
            }),
            _ => {}
        }
    }
    Ok(out)
}

/// Training and validation sequences, split by problem.
#[derive(Clone, Debug, Default)]
pub struct Corpus {
    /// Training sequences.
    pub train: Vec<Vec<u32>>,
    /// Per-token loss weights of the training sequences.
    pub train_loss: LossWeights,
    /// Validation sequences.
    pub val: Vec<Vec<u32>>,
    /// Per-token loss weights of the validation sequences (unweighted:
    /// every weight 1 or 0).
    pub val_loss: LossWeights,
    /// Problems in the training part.
    pub train_problems: usize,
}

/// Which targets of each sequence of a set carry loss, and with what
/// weight: target `k` of sequence `r` has weight 0 when
/// `k < max(from[r], 1)`, `weight` when `k >= weighted_from[r]`, else 1.
#[derive(Clone, Debug)]
pub struct LossWeights {
    /// First target with loss, per sequence.
    pub from: Vec<usize>,
    /// First target with weight `weight`, per sequence (`usize::MAX`:
    /// none).
    pub weighted_from: Vec<usize>,
    /// Weight of the targets from `weighted_from` on.
    pub weight: f32,
}

impl Default for LossWeights {
    /// No sequences yet; every target with loss will weigh 1.
    fn default() -> Self {
        Self::weighted(1.0)
    }
}

impl LossWeights {
    /// No sequences yet; continuation targets will weigh `weight`.
    pub fn weighted(weight: f32) -> Self {
        Self {
            from: Vec::new(),
            weighted_from: Vec::new(),
            weight,
        }
    }

    fn push(&mut self, s: &Sequence) {
        self.from.push(s.loss_from);
        self.weighted_from
            .push(s.continuation_from.unwrap_or(usize::MAX));
    }

    /// Weight of target `k` (1-based: the token at index `k`) of sequence
    /// `r` of length `len`.
    pub fn at(&self, r: usize, k: usize, len: usize) -> f32 {
        let from = self.from.get(r).copied().unwrap_or(0).max(1);
        if k < from || k >= len {
            0.0
        } else if k >= self.weighted_from.get(r).copied().unwrap_or(usize::MAX) {
            self.weight
        } else {
            1.0
        }
    }

    /// Summed weight of sequence `r`'s targets (length `len`).
    pub fn total(&self, r: usize, len: usize) -> f64 {
        let from = self.from.get(r).copied().unwrap_or(0).max(1).min(len);
        let w = self
            .weighted_from
            .get(r)
            .copied()
            .unwrap_or(usize::MAX)
            .clamp(from, len);
        (w - from) as f64 + (len - w) as f64 * self.weight as f64
    }
}

/// Reads every file and splits by problem (deterministic in `seed`).
pub fn load_corpus(cfg: &DataConfig, seed: u64, max_len: usize) -> Result<Corpus> {
    let tok = TraceTokenizer::new();
    // Each record with its file and line, to name it in errors.
    let mut records = Vec::new();
    for p in &cfg.train {
        let left = cfg.max_problems.map(|n| n.saturating_sub(records.len()));
        if left == Some(0) {
            break;
        }
        records.extend(
            read_numbered(p, left)?
                .into_iter()
                .map(|(line, r)| (p, line, r)),
        );
    }
    if cfg.solved_only {
        records.retain(|(_, _, r)| r.solved());
    }
    let mut rng = SplitMix::new(seed ^ 0x5EED_DA7A);
    let mut c = Corpus {
        train_loss: LossWeights::weighted(cfg.continuation_weight),
        ..Corpus::default()
    };
    for (path, line, r) in &records {
        let seqs = sequences(r, cfg.kind, cfg, &tok, max_len).map_err(|e| Error::Data {
            path: path.to_path_buf(),
            record: *line,
            reason: e.to_string(),
        })?;
        if rng.next_f64() < cfg.val_fraction && c.val.len() < cfg.val_max_sequences {
            for s in seqs {
                c.val_loss.push(&s);
                c.val.push(s.ids);
            }
        } else {
            for s in seqs {
                c.train_loss.push(&s);
                c.train.push(s.ids);
            }
            c.train_problems += 1;
        }
    }
    c.val.truncate(cfg.val_max_sequences);
    c.val_loss.from.truncate(cfg.val_max_sequences);
    c.val_loss.weighted_from.truncate(cfg.val_max_sequences);
    if c.train.is_empty() {
        return Err(Error::Config("no training sequences".into()));
    }
    Ok(c)
}

/// A batch: indices of sequences, padded to the longest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Sequence indices.
    pub rows: Vec<usize>,
    /// Longest sequence.
    pub len: usize,
}

/// Packs `rows` (sorted longest first in place) into batches of at most
/// `batch_tokens` padded tokens (a longer sequence gets a batch alone).
fn pack_rows(rows: &mut [usize], lens: &[usize], batch_tokens: usize, out: &mut Vec<Batch>) {
    rows.sort_by_key(|&i| std::cmp::Reverse(lens[i]));
    let mut cur = Batch {
        rows: Vec::new(),
        len: 0,
    };
    for &i in rows.iter() {
        let len = cur.len.max(lens[i]);
        if !cur.rows.is_empty() && len * (cur.rows.len() + 1) > batch_tokens {
            out.push(std::mem::replace(
                &mut cur,
                Batch {
                    rows: Vec::new(),
                    len: 0,
                },
            ));
        }
        cur.len = cur.len.max(lens[i]);
        cur.rows.push(i);
    }
    if !cur.rows.is_empty() {
        out.push(cur);
    }
}

/// The epoch's seeded order of the sequences and the stream that goes on
/// to shuffle the batches.
fn epoch_order(n: usize, seed: u64, epoch: u64) -> (Vec<usize>, SplitMix) {
    let mut rng = SplitMix::new(seed.wrapping_mul(0x9E37).wrapping_add(epoch));
    let mut order: Vec<usize> = (0..n).collect();
    shuffle(&mut order, &mut rng);
    (order, rng)
}

/// One epoch's batches: shuffled (seed, epoch), sorted by length within
/// windows of 256 sequences so rows of a batch have similar lengths, cut
/// into batches of at most `batch_tokens` padded tokens, then shuffled.
pub fn epoch_batches(lens: &[usize], batch_tokens: usize, seed: u64, epoch: u64) -> Vec<Batch> {
    let (mut order, mut rng) = epoch_order(lens.len(), seed, epoch);
    let mut batches = Vec::new();
    for window in order.chunks_mut(256) {
        pack_rows(window, lens, batch_tokens, &mut batches);
    }
    shuffle(&mut batches, &mut rng);
    batches
}

/// One epoch's optimiser steps of `sequences` sequences each (the paper's
/// batch of 256; the epoch's last step may be smaller): the seeded order
/// cut into steps, each step's sequences packed into micro-batches of at
/// most `batch_tokens` padded tokens, the steps shuffled.
pub fn epoch_steps(
    lens: &[usize],
    sequences: usize,
    batch_tokens: usize,
    seed: u64,
    epoch: u64,
) -> Vec<Vec<Batch>> {
    let (mut order, mut rng) = epoch_order(lens.len(), seed, epoch);
    let mut steps: Vec<Vec<Batch>> = order
        .chunks_mut(sequences.max(1))
        .map(|rows| {
            let mut micro = Vec::new();
            pack_rows(rows, lens, batch_tokens, &mut micro);
            micro
        })
        .collect();
    shuffle(&mut steps, &mut rng);
    steps
}

/// Fisher-Yates shuffle with a seeded stream.
pub(crate) fn shuffle<T>(v: &mut [T], rng: &mut SplitMix) {
    for i in (1..v.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

#[cfg(test)]
mod tests;
