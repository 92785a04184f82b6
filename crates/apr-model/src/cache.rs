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
use crate::model::{Kv, Llama};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};

/// Keys and values of every layer for `rows` sequences.
#[derive(Debug)]
pub struct KvCache<B: Backend> {
    layers: Vec<Kv<B>>,
    lens: Vec<usize>,
    capacity: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl<B: Backend> KvCache<B> {
    /// An empty cache of `rows` sequences of at most `capacity` tokens.
    pub fn new(config: &ModelConfig, rows: usize, capacity: usize, device: &B::Device) -> Self {
        let shape = [rows, config.num_kv_heads, capacity, config.head_dim()];
        KvCache {
            layers: (0..config.num_layers)
                .map(|_| (Tensor::zeros(shape, device), Tensor::zeros(shape, device)))
                .collect(),
            lens: vec![0; rows],
            capacity,
            kv_heads: config.num_kv_heads,
            head_dim: config.head_dim(),
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
    /// appending their keys and values to the cache. An empty row is idle.
    /// With `all` the logits of every new position come back, otherwise
    /// only each row's last (an idle row's logits are meaningless).
    pub fn forward_cached(
        &self,
        cache: &mut KvCache<B>,
        new_tokens: &[&[u32]],
        all: bool,
    ) -> Result<Logits<B>> {
        let b = cache.rows();
        if new_tokens.len() != b {
            return Err(Error::Input(format!(
                "{} token rows for a cache of {b}",
                new_tokens.len()
            )));
        }
        let t = new_tokens.iter().map(|r| r.len()).max().unwrap_or(0);
        if t == 0 {
            return Err(Error::Input("no new tokens in any row".into()));
        }
        let cap = cache.capacity;
        for (r, toks) in new_tokens.iter().enumerate() {
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
        let dev = self.device();
        let lens = cache.lens.clone();
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
        // (row, its length, its new tokens): each row's new keys and values
        // are copied into its slots in place (the cache tensors are moved
        // out of the cache so that they are not shared, and burn writes
        // into a tensor it holds alone without copying it).
        let writes: Vec<(usize, usize, usize)> = (0..b)
            .filter(|&r| !new_tokens[r].is_empty())
            .map(|r| (r, lens[r], new_tokens[r].len()))
            .collect();
        let placeholder = Tensor::<B, 4>::zeros([1, 1, 1, 1], &dev);

        let rope = self.rope(&pos, b, t, &dev);
        let mut x = self.embed_tokens(ids);
        for (layer, kv) in self.layers.iter().zip(cache.layers.iter_mut()) {
            x = self.block(layer, x, &rope, Some(mask.clone()), |k, v| {
                let mut ck = std::mem::replace(&mut kv.0, placeholder.clone());
                let mut cv = std::mem::replace(&mut kv.1, placeholder.clone());
                for &(r, len, n) in &writes {
                    let src = [r..r + 1, 0..kvh, 0..n, 0..hd];
                    let dst = [r..r + 1, 0..kvh, len..len + n, 0..hd];
                    ck = ck.slice_assign(dst.clone(), k.clone().slice(src.clone()));
                    cv = cv.slice_assign(dst, v.clone().slice(src));
                }
                (kv.0, kv.1) = (ck, cv);
                let r = [0..b, 0..kvh, 0..kmax, 0..hd];
                (kv.0.clone().slice(r.clone()), kv.1.clone().slice(r))
            });
        }
        for (r, toks) in new_tokens.iter().enumerate() {
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
