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
use apr_kernels::attention::{attend_row, HostShape};
use apr_kernels::kv::HostKv;
pub use apr_kernels::kv::KvElem;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use rayon::prelude::*;

/// Where and how a [`KvCache`] keeps its keys and values, chosen when it
/// is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvKind {
    /// In host memory, each row grown on its own (`apr_kernels::kv`),
    /// elements of the given type; attention runs on the host. The CPU's
    /// layout, and the one [`crate::HostDecoder`] needs.
    Host(KvElem),
    /// As tensors on the backend's device, all rows grown together
    /// (`crate::device_cache`): no host round trip per layer, what a GPU
    /// backend needs. Elements take the backend's float type.
    Device,
}

impl KvKind {
    /// The kind for backend `B`: an f32 host cache on a backend with
    /// [`AprBackend::HOST_DECODE`] (the CPU), device tensors otherwise.
    pub fn default_for<B: AprBackend>() -> Self {
        if B::HOST_DECODE {
            KvKind::Host(KvElem::F32)
        } else {
            KvKind::Device
        }
    }
}

/// The storage of a [`KvCache`], one variant per [`KvKind`].
#[derive(Debug)]
pub(crate) enum KvStore<B: Backend> {
    Host(HostKv),
    Device(DeviceKv<B>),
}

impl<B: Backend> KvStore<B> {
    /// Empty storage of `kind` for `rows` rows of `config`'s layers; an
    /// error where a host kind's element type cannot hold the heads.
    fn new(config: &ModelConfig, rows: usize, kind: KvKind, device: &B::Device) -> Result<Self> {
        Ok(match kind {
            KvKind::Host(elem) => Self::host(config, rows, elem)?,
            KvKind::Device => KvStore::Device(DeviceKv::new(config, device)),
        })
    }

    /// Empty host storage of `elem`; an error where `elem` cannot hold the
    /// heads ([`KvElem::check`]).
    fn host(config: &ModelConfig, rows: usize, elem: KvElem) -> Result<Self> {
        let (l, kvh, hd) = (config.num_layers, config.num_kv_heads, config.head_dim());
        Ok(KvStore::Host(HostKv::new(l, rows, kvh, hd, elem)?))
    }

    /// Empty f32 storage in host memory.
    fn host_f32(config: &ModelConfig, rows: usize) -> Self {
        let (l, kvh, hd) = (config.num_layers, config.num_kv_heads, config.head_dim());
        KvStore::Host(HostKv::f32(l, rows, kvh, hd))
    }
}

/// Keys and values of every layer for `rows` sequences.
///
/// Where they live is chosen when the cache is built ([`KvKind`]): in host
/// memory ([`Self::on_host`], [`Self::on_host_bf16`]), where a step writes
/// each fed row's new keys and values and computes attention on the host,
/// each row over its own valid prefix only (in parallel over rows); or as
/// backend tensors ([`Self::on_device`]). [`Self::new`] picks the
/// backend's default. Either way memory is committed as rows fill up.
#[derive(Debug)]
pub struct KvCache<B: Backend> {
    pub(crate) store: KvStore<B>,
    pub(crate) lens: Vec<usize>,
    pub(crate) capacity: usize,
    pub(crate) num_layers: usize,
    pub(crate) kv_heads: usize,
    pub(crate) head_dim: usize,
}

impl<B: AprBackend> KvCache<B> {
    /// An empty cache of `rows` sequences of at most `capacity` tokens, of
    /// the backend's default kind ([`KvKind::default_for`]): in host
    /// memory on the CPU, as device tensors otherwise.
    pub fn new(config: &ModelConfig, rows: usize, capacity: usize, device: &B::Device) -> Self {
        let store = match KvKind::default_for::<B>() {
            KvKind::Host(_) => KvStore::host_f32(config, rows),
            KvKind::Device => KvStore::Device(DeviceKv::new(config, device)),
        };
        Self::empty(config, rows, capacity, store)
    }
}

impl<B: Backend> KvCache<B> {
    /// An empty cache of `kind`; an error where the kind cannot hold the
    /// model's heads ([`KvElem::check`]).
    pub fn with_kind(
        config: &ModelConfig,
        rows: usize,
        capacity: usize,
        kind: KvKind,
        device: &B::Device,
    ) -> Result<Self> {
        let store = KvStore::new(config, rows, kind, device)?;
        Ok(Self::empty(config, rows, capacity, store))
    }

    /// A cache of `rows` empty rows over `store`.
    fn empty(config: &ModelConfig, rows: usize, capacity: usize, store: KvStore<B>) -> Self {
        KvCache {
            store,
            lens: vec![0; rows],
            capacity,
            num_layers: config.num_layers,
            kv_heads: config.num_kv_heads,
            head_dim: config.head_dim(),
        }
    }

    /// An empty cache in host memory (each row's block grows by doubling).
    /// [`crate::HostDecoder`] needs this one.
    pub fn on_host(config: &ModelConfig, rows: usize, capacity: usize) -> Self {
        Self::empty(config, rows, capacity, KvStore::host_f32(config, rows))
    }

    /// An empty cache in host memory holding keys and values as bfloat16
    /// (`apr_kernels::kv16` has the layout): half the memory of
    /// [`Self::on_host`], and half the bytes attention reads at each step.
    /// Attention still computes in f32, on the rounded keys and values, so
    /// the logits differ from an f32 cache by the rounding (relative 2^-9
    /// per key and value element); batched and one-at-a-time decoding
    /// still agree exactly. Needs a head width that is a multiple of 16.
    pub fn on_host_bf16(config: &ModelConfig, rows: usize, capacity: usize) -> Result<Self> {
        let store = KvStore::host(config, rows, KvElem::Bf16)?;
        Ok(Self::empty(config, rows, capacity, store))
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
        let store = KvStore::Device(DeviceKv::new(config, device));
        Self::empty(config, rows, capacity, store)
    }

    /// Where and how the keys and values are kept.
    pub fn kind(&self) -> KvKind {
        match &self.store {
            KvStore::Host(h) => KvKind::Host(h.elem()),
            KvStore::Device(_) => KvKind::Device,
        }
    }

    /// Whether keys and values are stored as bfloat16 (in host memory).
    pub fn is_bf16(&self) -> bool {
        self.kind() == KvKind::Host(KvElem::Bf16)
    }

    /// Whether the cache is kept as device tensors ([`Self::on_device`]).
    pub fn is_on_device(&self) -> bool {
        self.kind() == KvKind::Device
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

    /// Bytes of the keys and values of every row holding `positions`
    /// (4 per 32-bit word of storage).
    fn bytes_for(&self, positions: usize) -> usize {
        let width = match &self.store {
            KvStore::Host(h) => h.elem().width(self.head_dim),
            KvStore::Device(_) => self.head_dim,
        };
        2 * self.num_layers * self.rows() * self.kv_heads * positions * width * 4
    }

    /// Bytes the keys and values take now.
    pub fn committed_bytes(&self) -> usize {
        match &self.store {
            KvStore::Host(h) => h.committed_bytes(),
            KvStore::Device(d) => self.bytes_for(d.positions),
        }
    }

    /// Makes room in every layer for each fed row's new tokens (after
    /// [`Self::check_feed`]).
    pub(crate) fn grow(&mut self, feed: &[(usize, &[u32])]) {
        let (lens, cap, kvh, hd) = (&self.lens, self.capacity, self.kv_heads, self.head_dim);
        match &mut self.store {
            KvStore::Host(h) => h.grow(lens, feed, cap),
            KvStore::Device(d) => {
                let need = feed
                    .iter()
                    .map(|&(r, t)| lens[r] + t.len())
                    .max()
                    .unwrap_or(0);
                d.grow(need, cap, lens.len(), kvh * hd);
            }
        }
    }

    /// Checks a step's `(row, new tokens)` pairs: at least one, rows
    /// distinct and in range, tokens not empty, within the capacity and
    /// the vocabulary.
    pub(crate) fn check_feed(&self, feed: &[(usize, &[u32])], vocab: usize) -> Result<()> {
        Ok(apr_kernels::kv::check_feed(
            &self.lens,
            self.capacity,
            vocab,
            feed,
        )?)
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
        cache.check_feed(feed, self.config.vocab_size)?;
        cache.grow(feed);
        let t = feed.iter().map(|r| r.1.len()).max().unwrap_or(0);
        let slots: Vec<usize> = feed.iter().map(|r| r.0).collect();
        let news: Vec<usize> = feed.iter().map(|r| r.1.len()).collect();
        let lens: Vec<usize> = slots.iter().map(|&r| cache.lens[r]).collect();
        let dev = self.device();
        let mut ids = Vec::with_capacity(b * t);
        let mut pos = Vec::with_capacity(b * t);
        for (r, &(_, toks)) in feed.iter().enumerate() {
            for i in 0..t {
                ids.push(toks.get(i).copied().unwrap_or(0) as i64);
                pos.push((lens[r] + i) as i64);
            }
        }
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [b, t]), &dev);
        let x = match &mut cache.store {
            KvStore::Device(d) => {
                let plan = d.plan(&slots, &lens, &news);
                self.trunk(ids, &pos, |i, q, k, v| {
                    let (k, v) = d.update(i, &plan, k, v);
                    self.sdpa(q, k, v, Some(plan.mask.clone()))
                })
            }
            KvStore::Host(kv) => {
                let rows = HostRows {
                    slots: &slots,
                    lens: &lens,
                    news: &news,
                };
                self.trunk(ids, &pos, |i, q, k, v| rows.attend(kv, i, q, k, v))
            }
        };
        for &(r, toks) in feed {
            cache.lens[r] += toks.len();
        }
        if all {
            return Ok(Logits::All(self.head(x)));
        }
        let last: Vec<i64> = news.iter().map(|&n| n.saturating_sub(1) as i64).collect();
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

/// The fed rows of a cached step on a host-memory cache: their slots, the
/// tokens each held before the step, and their new tokens' counts.
struct HostRows<'a> {
    slots: &'a [usize],
    lens: &'a [usize],
    news: &'a [usize],
}

impl HostRows<'_> {
    /// Attention of layer `layer` on the host: writes the new keys and
    /// values `k`, `v` (`[b, kv_heads, t, hd]`, rotated) into `kv` and
    /// attends each row's queries `q` (`[b, heads, t, hd]`) over its own
    /// valid prefix, in parallel over rows.
    fn attend<B: Backend>(
        &self,
        kv: &mut HostKv,
        layer: usize,
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
    ) -> Tensor<B, 4> {
        let [b, nh, t, hd] = q.dims();
        let kvh = k.dims()[1];
        let dev = q.device();
        let host = |x: Tensor<B, 4>| -> Vec<f32> {
            x.into_data()
                .convert::<f32>()
                .into_vec()
                .unwrap_or_default()
        };
        let (q, k, v) = (host(q), host(k), host(v));
        for (r, &slot) in self.slots.iter().enumerate() {
            for h in 0..kvh {
                for i in 0..self.news[r] {
                    let src = ((r * kvh + h) * t + i) * hd;
                    let (key, value) = (&k[src..src + hd], &v[src..src + hd]);
                    kv.store(layer, slot, h, self.lens[r] + i, key, value);
                }
            }
        }
        let shape = HostShape::head_major(nh, kvh, hd, t);
        let mut out = vec![0.0f32; b * nh * t * hd];
        let kv = &*kv;
        let per_row = nh * t * hd;
        out.par_chunks_mut(per_row).enumerate().for_each(|(r, o)| {
            let q = &q[r * per_row..(r + 1) * per_row];
            let row = kv.row(layer, self.slots[r], self.lens[r]);
            attend_row(&shape, q, self.news[r], row, o);
        });
        Tensor::from_data(TensorData::new(out, [b, nh, t, hd]), &dev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cpu;

    /// A cache is of the kind it was built, and reports it.
    #[test]
    fn a_cache_is_of_the_kind_it_was_built() {
        let c = ModelConfig::preset("tiny").unwrap();
        let dev = Default::default();
        let kinds = [
            KvKind::Host(KvElem::F32),
            KvKind::Host(KvElem::Bf16),
            KvKind::Device,
        ];
        for kind in kinds {
            let cache = KvCache::<Cpu>::with_kind(&c, 3, 8, kind, &dev).unwrap();
            assert_eq!(cache.kind(), kind);
            assert_eq!(cache.is_bf16(), kind == KvKind::Host(KvElem::Bf16));
            assert_eq!(cache.is_on_device(), kind == KvKind::Device);
            assert_eq!((cache.rows(), cache.capacity()), (3, 8));
            assert_eq!(cache.committed_bytes(), 0);
        }
        let by_name = [
            KvCache::<Cpu>::new(&c, 1, 8, &dev).kind(),
            KvCache::<Cpu>::on_host(&c, 1, 8).kind(),
            KvCache::<Cpu>::on_host_bf16(&c, 1, 8).unwrap().kind(),
            KvCache::<Cpu>::on_device(&c, 1, 8, &dev).kind(),
        ];
        assert_eq!(by_name[0], KvKind::default_for::<Cpu>());
        assert_eq!(by_name[1..], kinds);
    }
}
