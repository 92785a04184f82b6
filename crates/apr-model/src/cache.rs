//! A KV cache for many sequences of different lengths in one batch, and
//! the cached forward that decodes them together.
//!
//! The cache holds `rows` slots of `capacity` positions per layer. Each row
//! has its own length; a forward step takes any number of new tokens per
//! row (none for an idle row), at that row's positions. New keys and values
//! are written into each row's slots in place; positions past a row's
//! length are masked.

use crate::attention::AprBackend;
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::model::Llama;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};

/// Keys and values of every layer for `rows` sequences.
///
/// They live in host memory, one `[kv_heads, capacity, head_dim]` block per
/// (layer, row) for keys and one for values, and each step builds the
/// `[rows, kv_heads, longest, head_dim]` tensors attention reads from the
/// rows' valid prefixes. burn 0.21's `flex` backend copies a whole tensor
/// on every `slice_assign` or `scatter`, so a cache kept as burn tensors
/// cost a copy of the entire cache per layer per step; this layout costs a
/// copy of what attention reads anyway. (On a GPU backend this host
/// round trip is slow; the CUDA path is issue 6's.)
#[derive(Debug)]
pub struct KvCache<B: Backend> {
    /// `[layer][row]`: keys, then values.
    layers: Vec<Vec<(Vec<f32>, Vec<f32>)>>,
    lens: Vec<usize>,
    capacity: usize,
    kv_heads: usize,
    head_dim: usize,
    _backend: std::marker::PhantomData<B>,
}

impl<B: Backend> KvCache<B> {
    /// An empty cache of `rows` sequences of at most `capacity` tokens
    /// (`device` is where the per-step tensors are built; the memory is
    /// committed as rows fill up).
    pub fn new(config: &ModelConfig, rows: usize, capacity: usize, device: &B::Device) -> Self {
        let _ = device;
        let n = config.num_kv_heads * capacity * config.head_dim();
        KvCache {
            layers: (0..config.num_layers)
                .map(|_| (0..rows).map(|_| (vec![0.0; n], vec![0.0; n])).collect())
                .collect(),
            lens: vec![0; rows],
            capacity,
            kv_heads: config.num_kv_heads,
            head_dim: config.head_dim(),
            _backend: std::marker::PhantomData,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.lens.len()
    }

    /// Positions per row.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Tokens held by each row.
    pub fn lens(&self) -> &[usize] {
        &self.lens
    }

    /// Bytes held by the keys and values (f32).
    pub fn bytes(&self) -> usize {
        2 * self.layers.len() * self.rows() * self.kv_heads * self.capacity * self.head_dim * 4
    }

    /// Keeps the first `len` tokens of `row` (for example to reuse a
    /// shared prefix); `0` frees the row. Nothing is copied: positions past
    /// a row's length are masked and overwritten by its next tokens.
    pub fn truncate_row(&mut self, row: usize, len: usize) -> Result<()> {
        let rows = self.rows();
        let old = self
            .lens
            .get_mut(row)
            .ok_or_else(|| Error::Input(format!("row {row} of {rows}")))?;
        *old = len.min(*old);
        Ok(())
    }
}

/// What a cached forward returns.
#[derive(Debug)]
pub enum Logits<B: Backend> {
    /// The logits of each row's last new token, `[rows, vocab]`.
    Last(Tensor<B, 2>),
    /// The logits of every new position, `[rows, t, vocab]` (`t` the most
    /// new tokens of any row; positions past a row's count are padding).
    All(Tensor<B, 3>),
}

impl<B: AprBackend> Llama<B> {
    /// Runs `new_tokens[r]` through the model at row `r`'s next positions,
    /// appending their keys and values to the cache. An empty row is idle
    /// (not computed). With `all` the logits of every new position come
    /// back, otherwise only each row's last (an idle row's logits are
    /// meaningless: a copy of another row's).
    pub fn forward_cached(
        &self,
        cache: &mut KvCache<B>,
        new_tokens: &[&[u32]],
        all: bool,
    ) -> Result<Logits<B>> {
        let rows = cache.rows();
        if new_tokens.len() != rows {
            return Err(Error::Input(format!(
                "{} token rows for a cache of {rows}",
                new_tokens.len()
            )));
        }
        let feed: Vec<(usize, &[u32])> = new_tokens
            .iter()
            .enumerate()
            .filter(|(_, t)| !t.is_empty())
            .map(|(r, t)| (r, *t))
            .collect();
        let out = self.forward_rows(cache, &feed, all)?;
        if feed.len() == rows {
            return Ok(out);
        }
        let mut at = vec![0i64; rows];
        for (i, &(r, _)) in feed.iter().enumerate() {
            at[r] = i as i64;
        }
        let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(at, [rows]), &self.device());
        Ok(match out {
            Logits::Last(l) => Logits::Last(l.select(0, idx)),
            Logits::All(l) => Logits::All(l.select(0, idx)),
        })
    }

    /// Runs only the rows named in `feed`: `(row, new tokens)` pairs, rows
    /// distinct, tokens not empty. Logits come back in `feed` order
    /// (`[feed.len(), vocab]`, or `[feed.len(), t, vocab]` with `all`).
    /// Rows not named cost nothing.
    pub fn forward_rows(
        &self,
        cache: &mut KvCache<B>,
        feed: &[(usize, &[u32])],
        all: bool,
    ) -> Result<Logits<B>> {
        let b = feed.len();
        let t = feed.iter().map(|r| r.1.len()).max().unwrap_or(0);
        if t == 0 || feed.iter().any(|r| r.1.is_empty()) {
            return Err(Error::Input("a fed row has no new tokens".into()));
        }
        let cap = cache.capacity;
        let mut seen = vec![false; cache.rows()];
        for &(r, toks) in feed {
            if r >= cache.rows() || std::mem::replace(&mut seen[r], true) {
                return Err(Error::Input(format!(
                    "row {r} missing or repeated (cache of {})",
                    cache.rows()
                )));
            }
            if cache.lens[r] + toks.len() > cap {
                return Err(Error::Input(format!(
                    "row {r}: {} + {} tokens exceed the cache capacity {cap}",
                    cache.lens[r],
                    toks.len()
                )));
            }
            if let Some(&bad) = toks.iter().find(|&&x| x as usize >= self.config.vocab_size) {
                return Err(Error::Input(format!(
                    "token id {bad} outside the vocabulary"
                )));
            }
        }
        let new_tokens: Vec<&[u32]> = feed.iter().map(|r| r.1).collect();
        let slots: Vec<usize> = feed.iter().map(|r| r.0).collect();
        let dev = self.device();
        let lens: Vec<usize> = slots.iter().map(|&r| cache.lens[r]).collect();
        let kmax = (0..b)
            .map(|r| lens[r] + new_tokens[r].len())
            .max()
            .unwrap_or(1)
            .max(1);
        let (kvh, hd) = (cache.kv_heads, cache.head_dim);

        let mut ids = Vec::with_capacity(b * t);
        let mut pos = Vec::with_capacity(b * t);
        let mut mask = Vec::with_capacity(b * t * kmax);
        for (r, toks) in new_tokens.iter().enumerate() {
            let (len, n) = (lens[r], toks.len());
            for i in 0..t {
                ids.push(toks.get(i).copied().unwrap_or(0) as i64);
                pos.push((len + i) as i64);
                // Key 0 is never masked, so that no row (an idle one)
                // has every key masked; its output is then ignored.
                mask.extend((0..kmax).map(|k| k != 0 && (k > len + i || k >= len + n)));
            }
        }
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [b, t]), &dev);
        let mask = Tensor::<B, 3, Bool>::from_data(TensorData::new(mask, [b, t, kmax]), &dev);

        let rope = self.rope(&pos, b, t, &dev);
        let mut x = self.embed_tokens(ids);
        for (layer, rows) in self.layers.iter().zip(cache.layers.iter_mut()) {
            x = self.block(layer, x, &rope, Some(mask.clone()), |k, v| {
                let mut out = [k, v].map(|new| {
                    // `[b, kvh, t, hd]`, row-major.
                    let new: Vec<f32> = new
                        .into_data()
                        .convert::<f32>()
                        .into_vec()
                        .unwrap_or_else(|_| vec![0.0; b * kvh * t * hd]);
                    (new, Vec::<f32>::with_capacity(b * kvh * kmax * hd))
                });
                for (which, (new, dense)) in out.iter_mut().enumerate() {
                    // Each row: its new tokens into its slot, then each
                    // head's valid prefix into the dense tensor, zeros to
                    // `kmax` (masked), appended without zeroing first.
                    for (r, &row) in slots.iter().enumerate() {
                        let (len, n) = (lens[r], new_tokens[r].len());
                        let (ks, vs) = &mut rows[row];
                        let slot = if which == 0 { ks } else { vs };
                        for h in 0..kvh {
                            let src = (r * kvh + h) * t * hd;
                            let dst = (h * cap + len) * hd;
                            slot[dst..dst + n * hd].copy_from_slice(&new[src..src + n * hd]);
                        }
                        for h in 0..kvh {
                            let src = h * cap * hd;
                            dense.extend_from_slice(&slot[src..src + (len + n) * hd]);
                            dense.resize(dense.len() + (kmax - len - n) * hd, 0.0);
                        }
                    }
                }
                let [(_, k), (_, v)] = out;
                let shape = [b, kvh, kmax, hd];
                (
                    Tensor::from_data(TensorData::new(k, shape), &dev),
                    Tensor::from_data(TensorData::new(v, shape), &dev),
                )
            });
        }
        for &(r, toks) in feed {
            cache.lens[r] += toks.len();
        }
        if all {
            return Ok(Logits::All(self.head(x)));
        }
        let last: Vec<i64> = new_tokens
            .iter()
            .map(|r| r.len().saturating_sub(1) as i64)
            .collect();
        let h = self.config.hidden_size;
        let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(last, [b]), &dev)
            .reshape([b, 1, 1])
            .expand([b, 1, h]);
        let x = x.gather(1, idx);
        Ok(Logits::Last(
            self.head(x).reshape([b, self.config.vocab_size]),
        ))
    }
}
