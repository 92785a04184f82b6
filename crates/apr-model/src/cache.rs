//! A KV cache for many sequences of different lengths in one batch, and
//! the cached forward that decodes them together.
//!
//! The cache holds `rows` slots of `capacity` positions per layer. Each row
//! has its own length; a forward step takes any number of new tokens per
//! row (none for an idle row), at that row's positions. New keys and values
//! are written into each row's slots in place; positions past a row's
//! length are masked.

use crate::backend::AprBackend;
use crate::config::ModelConfig;
use crate::device_cache::DeviceKv;
use crate::error::{Error, Result};
use crate::model::Llama;
use apr_kernels::attention::{attend_row, CachedRow, HostShape};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use rayon::prelude::*;

/// Keys and values of every layer for `rows` sequences.
///
/// They live in host memory, one `[kv_heads, block, head_dim]` array per
/// (layer, row) for keys and one for values, where a row's `block` (its
/// allocated positions) grows by doubling up to `capacity` as the row
/// fills: memory is committed for the tokens a row has held, not for its
/// capacity (reserving every row's capacity up front would make the kernel
/// zero the whole budget, hundreds of MB, at each rollout's first steps). A
/// step writes each fed row's new keys and values and computes attention
/// on the host, each row over its own valid prefix only (in parallel over
/// rows). burn 0.21's `flex` backend copies a whole tensor on every
/// `slice_assign` or `scatter`, so a cache kept as burn tensors would
/// cost a copy of the entire cache per layer per step, and dense
/// `[rows, kv_heads, longest, head_dim]` tensors padded to the longest
/// row would dominate decoding at long contexts.
///
/// On a backend whose memory is not the host's (CUDA) the cache is kept
/// as backend tensors instead ([`Self::on_device`], what [`Self::new`]
/// picks there; `crate::device_cache` has the layout): no host round trip
/// per layer.
#[derive(Debug)]
pub struct KvCache<B: Backend> {
    /// `[layer][row]`: keys, then values (empty when on the device).
    pub(crate) layers: Vec<Vec<(Vec<f32>, Vec<f32>)>>,
    /// The cache as device tensors, when it is kept there.
    pub(crate) device: Option<DeviceKv<B>>,
    pub(crate) lens: Vec<usize>,
    /// Positions allocated per head block, per row.
    pub(crate) block: Vec<usize>,
    pub(crate) capacity: usize,
    pub(crate) kv_heads: usize,
    pub(crate) head_dim: usize,
    /// Keys and values stored as bfloat16 ([`Self::on_host_bf16`]).
    pub(crate) bf16: bool,
    _backend: std::marker::PhantomData<B>,
}

impl<B: AprBackend> KvCache<B> {
    /// An empty cache of `rows` sequences of at most `capacity` tokens, in
    /// host memory on a backend with [`AprBackend::HOST_DECODE`] (the CPU)
    /// and as device tensors otherwise ([`Self::on_device`]). Memory is
    /// committed as rows fill up.
    pub fn new(config: &ModelConfig, rows: usize, capacity: usize, device: &B::Device) -> Self {
        if B::HOST_DECODE {
            Self::on_host(config, rows, capacity)
        } else {
            Self::on_device(config, rows, capacity, device)
        }
    }
}

impl<B: Backend> KvCache<B> {
    /// An empty cache in host memory (each row's block grows by doubling).
    /// [`crate::HostDecoder`] needs this one.
    pub fn on_host(config: &ModelConfig, rows: usize, capacity: usize) -> Self {
        KvCache {
            device: None,
            layers: (0..config.num_layers)
                .map(|_| (0..rows).map(|_| (Vec::new(), Vec::new())).collect())
                .collect(),
            lens: vec![0; rows],
            block: vec![0; rows],
            capacity,
            kv_heads: config.num_kv_heads,
            head_dim: config.head_dim(),
            bf16: false,
            _backend: std::marker::PhantomData,
        }
    }

    /// An empty cache in host memory holding keys and values as bfloat16
    /// (`crate::kv16` has the layout): half the memory of
    /// [`Self::on_host`], and half the bytes attention reads at each step.
    /// Attention still computes in f32, on the rounded keys and values, so
    /// the logits differ from an f32 cache by the rounding (relative 2^-9
    /// per key and value element); batched and one-at-a-time decoding
    /// still agree exactly. Needs a head width that is a multiple of 16.
    pub fn on_host_bf16(config: &ModelConfig, rows: usize, capacity: usize) -> Result<Self> {
        let hd = config.head_dim();
        if !hd.is_multiple_of(apr_kernels::kv16::CHUNK) {
            return Err(Error::Input(format!(
                "a bfloat16 cache needs a head width that is a multiple of {}, not {hd}",
                apr_kernels::kv16::CHUNK
            )));
        }
        let mut cache = Self::on_host(config, rows, capacity);
        cache.bf16 = true;
        Ok(cache)
    }

    /// Whether keys and values are stored as bfloat16.
    pub fn is_bf16(&self) -> bool {
        self.bf16
    }

    /// Elements of storage per (position, head): the head width, or half
    /// of it (two bfloat16 values per 32-bit word).
    pub(crate) fn width(&self) -> usize {
        if self.bf16 {
            self.head_dim / 2
        } else {
            self.head_dim
        }
    }

    /// An empty cache kept as tensors on `device` (all rows' positions
    /// grow together, by doubling, with the longest row): what a GPU
    /// backend needs; on the CPU only to test this path.
    pub fn on_device(
        config: &ModelConfig,
        rows: usize,
        capacity: usize,
        device: &B::Device,
    ) -> Self {
        let mut cache = Self::on_host(config, 0, capacity);
        cache.lens = vec![0; rows];
        cache.block = vec![0; rows];
        cache.device = Some(DeviceKv::new(config, device));
        cache
    }

    /// Whether the cache is kept as device tensors ([`Self::on_device`]).
    pub fn is_on_device(&self) -> bool {
        self.device.is_some()
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

    /// Bytes the keys and values may take, every row full.
    pub fn bytes(&self) -> usize {
        self.bytes_for(self.capacity)
    }

    /// Bytes of the keys and values of every row holding `positions`.
    fn bytes_for(&self, positions: usize) -> usize {
        2 * self.layers.len() * self.rows() * self.kv_heads * positions * self.width() * 4
    }

    /// Bytes the keys and values take now.
    pub fn committed_bytes(&self) -> usize {
        if let Some(d) = &self.device {
            return self.bytes_for(d.positions);
        }
        let floats: usize = self
            .layers
            .iter()
            .flatten()
            .map(|(k, v)| k.len() + v.len())
            .sum();
        floats * 4
    }

    /// Makes room in every layer for each fed row's new tokens (after
    /// [`Self::check_feed`]).
    pub(crate) fn grow(&mut self, feed: &[(usize, &[u32])]) {
        let (hd, kvh) = (self.width(), self.kv_heads);
        if let Some(d) = &mut self.device {
            let need = feed
                .iter()
                .map(|&(r, t)| self.lens[r] + t.len())
                .max()
                .unwrap_or(0);
            d.grow(need, self.capacity, self.lens.len(), kvh * self.head_dim);
            return;
        }
        for &(r, toks) in feed {
            let (need, old) = (self.lens[r] + toks.len(), self.block[r]);
            if need <= old {
                continue;
            }
            let new = need.max(2 * old).min(self.capacity);
            let keep = self.lens[r] * hd;
            for layer in &mut self.layers {
                let (k, v) = &mut layer[r];
                for x in [k, v] {
                    let mut y = vec![0.0; kvh * new * hd];
                    for g in 0..kvh {
                        y[g * new * hd..][..keep].copy_from_slice(&x[g * old * hd..][..keep]);
                    }
                    *x = y;
                }
            }
            self.block[r] = new;
        }
    }

    /// Checks a step's `(row, new tokens)` pairs: at least one, rows
    /// distinct and in range, tokens not empty, within the capacity and
    /// the vocabulary.
    pub(crate) fn check_feed(&self, feed: &[(usize, &[u32])], vocab: usize) -> Result<()> {
        if feed.is_empty() || feed.iter().any(|r| r.1.is_empty()) {
            return Err(Error::Input("a fed row has no new tokens".into()));
        }
        let mut seen = vec![false; self.rows()];
        for &(r, toks) in feed {
            if r >= self.rows() || std::mem::replace(&mut seen[r], true) {
                return Err(Error::Input(format!(
                    "row {r} missing or repeated (cache of {})",
                    self.rows()
                )));
            }
            if self.lens[r] + toks.len() > self.capacity {
                return Err(Error::Input(format!(
                    "row {r}: {} + {} tokens exceed the cache capacity {}",
                    self.lens[r],
                    toks.len(),
                    self.capacity
                )));
            }
            if let Some(&bad) = toks.iter().find(|&&x| x as usize >= vocab) {
                return Err(Error::Input(format!(
                    "token id {bad} outside the vocabulary"
                )));
            }
        }
        Ok(())
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

/// Writes one head's `src` (its `hd` values) at position slot `at` of a
/// row's keys or values: copied, or rounded and packed as bfloat16.
pub(crate) fn store(bf16: bool, slot: &mut [f32], at: usize, src: &[f32]) {
    let hd = src.len();
    if bf16 {
        let w = hd / 2;
        apr_kernels::kv16::pack(
            src,
            bytemuck::cast_slice_mut(&mut slot[at * w..(at + 1) * w]),
        );
    } else {
        slot[at * hd..(at + 1) * hd].copy_from_slice(src);
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
        cache.check_feed(feed, self.config.vocab_size)?;
        cache.grow(feed);
        let t = feed.iter().map(|r| r.1.len()).max().unwrap_or(0);
        let new_tokens: Vec<&[u32]> = feed.iter().map(|r| r.1).collect();
        let slots: Vec<usize> = feed.iter().map(|r| r.0).collect();
        let dev = self.device();
        let lens: Vec<usize> = slots.iter().map(|&r| cache.lens[r]).collect();
        let blocks: Vec<usize> = slots.iter().map(|&r| cache.block[r]).collect();
        let (kvh, hd, nh) = (cache.kv_heads, cache.head_dim, self.config.num_heads);
        let bf16 = cache.bf16;
        let mut ids = Vec::with_capacity(b * t);
        let mut pos = Vec::with_capacity(b * t);
        for (r, toks) in new_tokens.iter().enumerate() {
            for i in 0..t {
                ids.push(toks.get(i).copied().unwrap_or(0) as i64);
                pos.push((lens[r] + i) as i64);
            }
        }
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [b, t]), &dev);
        let rope = self.rope(&pos, b, t, &dev);
        let mut x = self.embed_tokens(ids);
        let host = |x: Tensor<B, 4>| -> Vec<f32> {
            x.into_data()
                .convert::<f32>()
                .into_vec()
                .unwrap_or_default()
        };
        if let Some(d) = &mut cache.device {
            let news: Vec<usize> = new_tokens.iter().map(|t| t.len()).collect();
            let plan = d.plan(&slots, &lens, &news);
            for (i, layer) in self.layers.iter().enumerate() {
                x = self.block(layer, x, &rope, |q, k, v| {
                    let (k, v) = d.update(i, &plan, k, v);
                    self.sdpa(q, k, v, Some(plan.mask.clone()))
                });
            }
        } else {
            for (layer, rows) in self.layers.iter().zip(cache.layers.iter_mut()) {
                x = self.block(layer, x, &rope, |q, k, v| {
                    // `[b, heads, t, hd]` and `[b, kv_heads, t, hd]`, row-major.
                    let (q, k, v) = (host(q), host(k), host(v));
                    for (r, &row) in slots.iter().enumerate() {
                        let n = new_tokens[r].len();
                        let (ks, vs) = &mut rows[row];
                        for (new, slot) in [(&k, ks), (&v, vs)] {
                            for h in 0..kvh {
                                for i in 0..n {
                                    let src = ((r * kvh + h) * t + i) * hd;
                                    let at = h * blocks[r] + lens[r] + i;
                                    store(bf16, slot, at, &new[src..src + hd]);
                                }
                            }
                        }
                    }
                    let shape = HostShape::head_major(nh, kvh, hd, t);
                    let mut out = vec![0.0f32; b * nh * t * hd];
                    let rows = &*rows;
                    let per_row = nh * t * hd;
                    out.par_chunks_mut(per_row).enumerate().for_each(|(r, o)| {
                        let (ks, vs) = &rows[slots[r]];
                        let q = &q[r * per_row..(r + 1) * per_row];
                        let row = CachedRow {
                            len: lens[r],
                            block: blocks[r],
                            keys: ks,
                            values: vs,
                            bf16,
                        };
                        attend_row(&shape, q, new_tokens[r].len(), row, o);
                    });
                    Tensor::from_data(TensorData::new(out, [b, nh, t, hd]), &dev)
                });
            }
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
