//! What the engine needs of a model, and its implementation on a burn
//! [`Llama`] with a [`KvCache`].

use crate::error::{Error, Result};
use apr_model::{AprBackend, HostDecoder, KvCache, Llama, Logits};

/// A model with a fixed number of KV slots, one per running thread.
///
/// A slot holds the keys and values of the tokens fed to it so far.
/// [`StepModel::step`] feeds new tokens to some slots at once and returns,
/// for each, the next-token logits after its last new token.
pub trait StepModel {
    /// Number of slots (the KV memory budget, in threads).
    fn slots(&self) -> usize;
    /// Most tokens one slot can hold.
    fn capacity(&self) -> usize;
    /// Vocabulary size (length of every logits vector).
    fn vocab_size(&self) -> usize;
    /// Feeds `tokens` to `slot` for each entry (slots distinct, tokens not
    /// empty) and returns one logits vector per entry, in order.
    fn step(&mut self, feed: &[(usize, &[u32])]) -> Result<Vec<Vec<f32>>>;
    /// Keeps the first `len` tokens of `slot` (0 frees it).
    fn truncate(&mut self, slot: usize, len: usize) -> Result<()>;
}

/// A [`Llama`] and a [`KvCache`] of `slots` rows.
///
/// A step computes only the rows it feeds; `slots` bounds the memory
/// (`slots x capacity` keys and values per layer, committed as used).
/// On a backend with [`AprBackend::HOST_DECODE`] (the CPU) steps run on a
/// [`HostDecoder`] copy of the weights, otherwise through burn.
#[derive(Debug)]
pub struct LlamaStepper<B: AprBackend> {
    model: Llama<B>,
    cache: KvCache<B>,
    host: Option<HostDecoder>,
}

impl<B: AprBackend> LlamaStepper<B> {
    /// `slots` threads of up to `capacity` tokens each (at most the model's
    /// context window).
    pub fn new(model: Llama<B>, slots: usize, capacity: usize) -> Result<Self> {
        if slots == 0 {
            return Err(Error::Config("slots must be at least 1".into()));
        }
        let capacity = capacity.min(model.config.max_seq_len);
        let cache = KvCache::new(&model.config, slots, capacity, &model.device());
        let host = if B::HOST_DECODE {
            Some(HostDecoder::new(&model)?)
        } else {
            None
        };
        Ok(LlamaStepper { model, cache, host })
    }

    /// Steps through burn's ops even on the CPU (to compare the paths).
    pub fn burn_forward(mut self) -> Self {
        self.host = None;
        self
    }

    /// Steps through burn's ops with the KV cache kept as backend tensors
    /// ([`KvCache::on_device`], what a GPU backend gets anyway): on the CPU,
    /// to test that path.
    pub fn device_cache(mut self) -> Self {
        let c = &self.model.config;
        self.cache = KvCache::on_device(
            c,
            self.cache.rows(),
            self.cache.capacity(),
            &self.model.device(),
        );
        self.host = None;
        self
    }

    /// Keeps keys and values as bfloat16 in host memory
    /// ([`KvCache::on_host_bf16`]): half the memory and half the bytes
    /// attention reads, at the cost of rounding them (the logits move by
    /// about 1e-3). Only where the cache is in host memory (the CPU); a
    /// device cache takes the model's dtype instead (`--dtype bf16`), so
    /// there this is an error.
    pub fn kv_bf16(mut self) -> Result<Self> {
        if self.cache.is_on_device() {
            return Err(Error::Config(
                "a bfloat16 host cache needs the CPU backend; on a GPU use --dtype bf16".into(),
            ));
        }
        let c = &self.model.config;
        self.cache = KvCache::on_host_bf16(c, self.cache.rows(), self.cache.capacity())?;
        Ok(self)
    }

    /// Whether steps run on the [`HostDecoder`].
    pub fn host_decode(&self) -> bool {
        self.host.is_some()
    }

    /// The model.
    pub fn model(&self) -> &Llama<B> {
        &self.model
    }

    /// Bytes held by the KV cache.
    pub fn cache_bytes(&self) -> usize {
        self.cache.bytes()
    }

    /// One cached forward through burn's ops: each fed row's last logits.
    fn burn_step(&mut self, feed: &[(usize, &[u32])]) -> Result<Vec<Vec<f32>>> {
        let Logits::Last(l) = self.model.forward_rows(&mut self.cache, feed, false)? else {
            return Err(Error::Step("cached forward gave all logits".into()));
        };
        let v = self.model.config.vocab_size;
        let data: Vec<f32> = l
            .into_data()
            .convert::<f32>()
            .to_vec()
            .map_err(|e| Error::Step(format!("{e:?}")))?;
        Ok(data.chunks(v).map(<[f32]>::to_vec).collect())
    }
}

impl<B: AprBackend> StepModel for LlamaStepper<B> {
    fn slots(&self) -> usize {
        self.cache.rows()
    }

    fn capacity(&self) -> usize {
        self.cache.capacity()
    }

    fn vocab_size(&self) -> usize {
        self.model.config.vocab_size
    }

    fn step(&mut self, feed: &[(usize, &[u32])]) -> Result<Vec<Vec<f32>>> {
        if let Some(host) = &mut self.host {
            return Ok(host.forward_last(&mut self.cache, feed)?);
        }
        // Through burn every row of a call is padded to the call's longest
        // feed (the queries, and a `[rows, heads, t, len]` score tensor):
        // the one-token rows go together and each longer (prefill) row on
        // its own, so a prefill does not pad the whole batch to its length.
        let (ones, longer): (Vec<usize>, Vec<usize>) =
            (0..feed.len()).partition(|&i| feed[i].1.len() == 1);
        let mut out = vec![Vec::new(); feed.len()];
        let groups = std::iter::once(ones)
            .filter(|g| !g.is_empty())
            .chain(longer.into_iter().map(|i| vec![i]));
        for group in groups {
            let part: Vec<(usize, &[u32])> = group.iter().map(|&i| feed[i]).collect();
            for (i, logits) in group.into_iter().zip(self.burn_step(&part)?) {
                out[i] = logits;
            }
        }
        Ok(out)
    }

    fn truncate(&mut self, slot: usize, len: usize) -> Result<()> {
        Ok(self.cache.truncate_row(slot, len)?)
    }
}

/// Loads a checkpoint to decode with: strictly (every tensor used and
/// present, shapes and finite weights checked) and with its
/// `tokenizer.json` checked against the trace tokenizer the engine decodes
/// with.
pub fn load_model<B: burn::tensor::backend::Backend>(
    dir: &std::path::Path,
    device: &B::Device,
) -> apr_model::Result<apr_model::Llama<B>> {
    let tok = apr_trace::TraceTokenizer::new()
        .to_hf_json()
        .map_err(|e| apr_model::Error::Input(e.to_string()))?;
    apr_model::checkpoint::load_checked(dir, device, &tok)
}

/// Runs `cfg` on `problems` with `model` (a cheap clone of its parameters)
/// on a fresh [`LlamaStepper`] of `slots` slots of the model's context:
/// the results in (problem, sample) order and the engine's counters.
/// `on_done` sees each result as it finishes.
pub fn run_llama<B: AprBackend, P: apr_trace::Task>(
    model: &Llama<B>,
    problems: &[P],
    cfg: &crate::RolloutConfig,
    slots: usize,
    on_done: impl FnMut(&crate::ProblemResult),
) -> Result<(Vec<crate::ProblemResult>, crate::EngineStats)> {
    let mut stepper = LlamaStepper::new(model.clone(), slots, model.config.max_seq_len)?;
    run_stepper(&mut stepper, problems, cfg, on_done)
}

/// Runs `cfg` on `problems` with any [`StepModel`]: the results in
/// (problem, sample) order and the engine's counters. `on_done` sees each
/// result as it finishes.
pub fn run_stepper<P: apr_trace::Task>(
    stepper: &mut impl StepModel,
    problems: &[P],
    cfg: &crate::RolloutConfig,
    on_done: impl FnMut(&crate::ProblemResult),
) -> Result<(Vec<crate::ProblemResult>, crate::EngineStats)> {
    let mut engine = crate::Engine::new(stepper, cfg.clone())?;
    let results = engine.run(problems, on_done)?;
    Ok((results, engine.stats().clone()))
}
