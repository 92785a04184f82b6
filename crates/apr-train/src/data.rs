//! Training sequences from trace files, and length-bucketed batches.
//!
//! APR records give one sequence per call of every thread: the parent's
//! calls start with `Sub Call Budget: n ` (n = the problem's child-thread
//! count), children's calls have no prefix. SoS+ records give one sequence,
//! `Token Budget: B ` + the search path, B the trace's token count rounded
//! up to the bin (in our tokenizer's units). Each sequence is
//! `<s> tokens </s>`, cut to the context window.

use crate::config::{DataConfig, TraceKind};
use crate::error::{Error, Result};
use apr_countdown::TraceRecord;
use apr_model::init::SplitMix;
use apr_trace::tokenizer::EOS_ID;
use apr_trace::{Conditioning, TraceDict, TraceTokenizer};
use std::io::BufRead;
use std::path::Path;

/// Reads trace records (JSON Lines) from a file.
pub fn read_traces(path: &Path, limit: Option<usize>) -> Result<Vec<TraceRecord>> {
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
        out.push(r);
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

/// Where a call's loss starts: after the join block of a parent's
/// continuation (its pre-spawn text and the `<Sub Searches>` ...
/// `<End Sub Searches>` block, which the engine inserts at rollout time),
/// or 0 (every token) for other calls and when `cfg.loss_on_inserted`.
/// Falls back to 0 if the prompt's tokens are not a prefix of the call's.
fn loss_from(
    tok: &TraceTokenizer,
    prefix: Option<Conditioning>,
    text: &str,
    ids: &[u32],
    cfg: &DataConfig,
) -> usize {
    const END: &str = "<End Sub Searches>\n";
    if cfg.loss_on_inserted {
        return 0;
    }
    let Some(at) = text.rfind(END) else {
        return 0;
    };
    let prompt = tok.call_ids(prefix, &text[..at + END.len()]);
    if ids.starts_with(&prompt) {
        prompt.len()
    } else {
        0
    }
}

/// The training sequences of one record, each with the index of its first
/// token that carries loss (see [`DataConfig::loss_on_inserted`]).
pub fn sequences(
    r: &TraceRecord,
    kind: TraceKind,
    cfg: &DataConfig,
    tok: &TraceTokenizer,
    max_len: usize,
) -> Vec<(Vec<u32>, usize)> {
    match kind {
        TraceKind::Sosp => {
            let n = r
                .token_count
                .unwrap_or_else(|| tok.count(&r.search_path) + 2);
            let c = Conditioning::token_budget_for(n, cfg.token_budget_bin, 4096);
            vec![(tokens(tok, Some(c), &r.search_path, max_len), 0)]
        }
        TraceKind::Apr => {
            let mut calls = Vec::new();
            match &r.trace_dict {
                Some(d) => {
                    let children = r.child_thread_count.unwrap_or(0) as u32;
                    dict_calls(
                        d,
                        true,
                        Some(Conditioning::SubCallBudget(children)),
                        &mut calls,
                    );
                }
                None => calls.push((None, r.search_path.clone())),
            }
            calls
                .into_iter()
                .map(|(p, text)| {
                    let ids = tokens(tok, p, &text, max_len);
                    let from = loss_from(tok, p, &text, &ids, cfg);
                    (ids, from)
                })
                .collect()
        }
    }
}

/// Training and validation sequences, split by problem.
#[derive(Clone, Debug, Default)]
pub struct Corpus {
    /// Training sequences.
    pub train: Vec<Vec<u32>>,
    /// Index of each training sequence's first token with loss.
    pub train_from: Vec<usize>,
    /// Validation sequences.
    pub val: Vec<Vec<u32>>,
    /// Index of each validation sequence's first token with loss.
    pub val_from: Vec<usize>,
    /// Problems in the training part.
    pub train_problems: usize,
}

/// Reads every file and splits by problem (deterministic in `seed`).
pub fn load_corpus(cfg: &DataConfig, seed: u64, max_len: usize) -> Result<Corpus> {
    let tok = TraceTokenizer::new();
    let mut records = Vec::new();
    for p in &cfg.train {
        let left = cfg.max_problems.map(|n| n.saturating_sub(records.len()));
        if left == Some(0) {
            break;
        }
        records.extend(read_traces(p, left)?);
    }
    if cfg.solved_only {
        records.retain(|r| r.solved());
    }
    let mut rng = SplitMix::new(seed ^ 0x5EED_DA7A);
    let mut c = Corpus::default();
    for r in &records {
        let seqs = sequences(r, cfg.kind, cfg, &tok, max_len);
        if rng.next_f64() < cfg.val_fraction && c.val.len() < cfg.val_max_sequences {
            for (ids, from) in seqs {
                c.val.push(ids);
                c.val_from.push(from);
            }
        } else {
            for (ids, from) in seqs {
                c.train.push(ids);
                c.train_from.push(from);
            }
            c.train_problems += 1;
        }
    }
    c.val.truncate(cfg.val_max_sequences);
    c.val_from.truncate(cfg.val_max_sequences);
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

/// One epoch's batches: shuffled (seed, epoch), sorted by length within
/// windows of 256 sequences so rows of a batch have similar lengths, cut
/// into batches of at most `batch_tokens` padded tokens, then shuffled.
pub fn epoch_batches(lens: &[usize], batch_tokens: usize, seed: u64, epoch: u64) -> Vec<Batch> {
    let mut rng = SplitMix::new(seed.wrapping_mul(0x9E37).wrapping_add(epoch));
    let mut order: Vec<usize> = (0..lens.len()).collect();
    shuffle(&mut order, &mut rng);
    let mut batches = Vec::new();
    for window in order.chunks_mut(256) {
        window.sort_by_key(|&i| std::cmp::Reverse(lens[i]));
        let mut cur = Batch {
            rows: Vec::new(),
            len: 0,
        };
        for &i in window.iter() {
            let len = cur.len.max(lens[i]);
            if !cur.rows.is_empty() && len * (cur.rows.len() + 1) > batch_tokens {
                batches.push(std::mem::replace(
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
            batches.push(cur);
        }
    }
    shuffle(&mut batches, &mut rng);
    batches
}

/// Fisher-Yates shuffle with a seeded stream.
pub(crate) fn shuffle<T>(v: &mut [T], rng: &mut SplitMix) {
    for i in (1..v.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_cfg(loss_on_inserted: bool) -> DataConfig {
        DataConfig {
            train: vec![],
            kind: TraceKind::Apr,
            val_fraction: 0.0,
            val_max_sequences: 0,
            max_problems: None,
            solved_only: false,
            token_budget_bin: 512,
            loss_on_inserted,
        }
    }

    #[test]
    fn continuation_loss_starts_after_the_join_block() {
        let tok = TraceTokenizer::new();
        let text = "Moving to Node #0\nCurrent State: 24:[6, 4], Operations: []\n<Sub Searches>\n<No Solution in Sub Search 0 at level 1 at Node #0,0>\n<End Sub Searches>\nNo solution found.\n";
        let p = Some(Conditioning::SubCallBudget(2));
        let ids = tokens(&tok, p, text, 4096);
        let from = loss_from(&tok, p, text, &ids, &data_cfg(false));
        // The trained part is the generated rest and `</s>`.
        let rest = tok.call_ids(None, "No solution found.\n");
        assert_eq!(&ids[from..ids.len() - 1], &rest[1..]);
        assert_eq!(ids[ids.len() - 1], EOS_ID);
        assert_eq!(loss_from(&tok, p, text, &ids, &data_cfg(true)), 0);
        let first_call = "Moving to Node #0\nCurrent State: 24:[6, 4], Operations: []\n";
        let ids = tokens(&tok, None, first_call, 4096);
        assert_eq!(loss_from(&tok, None, first_call, &ids, &data_cfg(false)), 0);
    }

    #[test]
    fn batches_cover_every_sequence_once_within_the_token_budget() {
        let lens: Vec<usize> = (0..1000).map(|i| 10 + (i * 37) % 500).collect();
        let b = epoch_batches(&lens, 2048, 3, 0);
        let mut seen: Vec<usize> = b.iter().flat_map(|x| x.rows.clone()).collect();
        seen.sort();
        assert_eq!(seen, (0..1000).collect::<Vec<_>>());
        for x in &b {
            assert_eq!(x.len, x.rows.iter().map(|&i| lens[i]).max().unwrap());
            assert!(x.len * x.rows.len() <= 2048 || x.rows.len() == 1);
        }
        assert_eq!(b, epoch_batches(&lens, 2048, 3, 0));
        assert_ne!(b, epoch_batches(&lens, 2048, 3, 1));
    }
}
