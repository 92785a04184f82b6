//! What the engine needs of a model, and its implementation on a burn
//! [`Llama`] with a [`KvCache`].

use crate::error::{Error, Result};
use apr_model::{AprBackend, HostDecoder, KvCache, KvElem, KvKind, Llama, Logits};

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

/// How a [`LlamaStepper`] runs its steps, chosen when it is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepperKind {
    /// On a [`HostDecoder`] copy of the weights, with a host-memory cache
    /// of the given element type: the CPU's path.
    HostDecoder(KvElem),
    /// Through burn's ops ([`Llama::forward_rows`]), with a cache of the
    /// given kind: the GPU's path (device cache); on the CPU, to compare
    /// the paths or test the GPU's.
    Burn(KvKind),
}

impl StepperKind {
    /// The kind for backend `B`: the host decoder with an f32 cache on a
    /// backend with [`AprBackend::HOST_DECODE`] (the CPU), burn with a
    /// device cache otherwise.
    pub fn default_for<B: AprBackend>() -> Self {
        match KvKind::default_for::<B>() {
            KvKind::Host(elem) => StepperKind::HostDecoder(elem),
            KvKind::Device => StepperKind::Burn(KvKind::Device),
        }
    }

    /// The kind that command-line switches name on backend `B`: `burn`
    /// steps through burn's ops even where the default is the host
    /// decoder; `kv_bf16` keeps keys and values as bfloat16 in host
    /// memory (half the memory and half the bytes attention reads; the
    /// logits move by about 1e-3). A device cache takes the model's dtype
    /// instead (`--dtype bf16`), so `kv_bf16` where the default cache is
    /// on the device (a GPU) is an error.
    pub fn from_switches<B: AprBackend>(burn: bool, kv_bf16: bool) -> Result<Self> {
        let kind = Self::default_for::<B>();
        if !kv_bf16 {
            return Ok(match kind {
                StepperKind::HostDecoder(elem) if burn => StepperKind::Burn(KvKind::Host(elem)),
                kind => kind,
            });
        }
        match kind {
            StepperKind::Burn(KvKind::Device) => Err(Error::Config(
                "a bfloat16 host cache needs the CPU backend; on a GPU use --dtype bf16".into(),
            )),
            _ if burn => Ok(StepperKind::Burn(KvKind::Host(KvElem::Bf16))),
            _ => Ok(StepperKind::HostDecoder(KvElem::Bf16)),
        }
    }

    /// The kind of KV cache this kind of stepper decodes with.
    pub fn cache(self) -> KvKind {
        match self {
            StepperKind::HostDecoder(elem) => KvKind::Host(elem),
            StepperKind::Burn(kind) => kind,
        }
    }
}

/// What runs a [`LlamaStepper`]'s steps.
#[derive(Debug)]
enum Executor {
    /// The host decoder (its cache is in host memory), boxed: hundreds of
    /// bytes of buffers and weight headers beside an empty variant.
    Host(Box<HostDecoder>),
    /// burn's ops on the model.
    Burn,
}

/// A [`Llama`] and a [`KvCache`] of `slots` rows.
///
/// A step computes only the rows it feeds; `slots` bounds the memory
/// (`slots x capacity` keys and values per layer, committed as used).
/// How steps run is fixed when it is built ([`StepperKind`]).
#[derive(Debug)]
pub struct LlamaStepper<B: AprBackend> {
    model: Llama<B>,
    cache: KvCache<B>,
    exec: Executor,
}

impl<B: AprBackend> LlamaStepper<B> {
    /// `slots` threads of up to `capacity` tokens each (at most the model's
    /// context window), of the backend's default kind
    /// ([`StepperKind::default_for`]).
    pub fn new(model: Llama<B>, slots: usize, capacity: usize) -> Result<Self> {
        Self::with_kind(model, slots, capacity, StepperKind::default_for::<B>())
    }

    /// [`Self::new`] of the given kind.
    pub fn with_kind(
        model: Llama<B>,
        slots: usize,
        capacity: usize,
        kind: StepperKind,
    ) -> Result<Self> {
        if slots == 0 {
            return Err(Error::Config("slots must be at least 1".into()));
        }
        let capacity = capacity.min(model.config.max_seq_len);
        let (c, dev) = (&model.config, model.device());
        let cache = KvCache::with_kind(c, slots, capacity, kind.cache(), &dev)?;
        let exec = match kind {
            StepperKind::HostDecoder(_) => Executor::Host(Box::new(HostDecoder::new(&model)?)),
            StepperKind::Burn(_) => Executor::Burn,
        };
        Ok(LlamaStepper { model, cache, exec })
    }

    /// How steps run.
    pub fn kind(&self) -> StepperKind {
        match (&self.exec, self.cache.kind()) {
            (Executor::Host(_), KvKind::Host(elem)) => StepperKind::HostDecoder(elem),
            (_, kind) => StepperKind::Burn(kind),
        }
    }

    /// Whether steps run on the [`HostDecoder`].
    pub fn host_decode(&self) -> bool {
        matches!(self.exec, Executor::Host(_))
    }

    /// The model.
    pub fn model(&self) -> &Llama<B> {
        &self.model
    }

    /// Bytes held by the KV cache.
    pub fn cache_bytes(&self) -> usize {
        self.cache.bytes()
    }

    /// A step through burn's ops, in as few calls as padding allows.
    fn burn_steps(&mut self, feed: &[(usize, &[u32])]) -> Result<Vec<Vec<f32>>> {
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
        match &mut self.exec {
            Executor::Host(host) => Ok(host.forward_last(&mut self.cache, feed)?),
            Executor::Burn => self.burn_steps(feed),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use apr_model::{Cpu, ModelConfig};

    fn model(c: &ModelConfig) -> Llama<Cpu> {
        Llama::init(c, 1, &Default::default())
    }

    /// The command-line switches name each CPU kind, and a stepper built
    /// of a kind runs its steps that way, on a cache of that kind.
    #[test]
    fn a_stepper_is_of_the_kind_it_was_built() {
        let mut c = ModelConfig::preset("tiny").unwrap();
        c.num_layers = 1;
        let host = |e| StepperKind::HostDecoder(e);
        let burn = |k| StepperKind::Burn(k);
        let switches = [
            ((false, false), host(KvElem::F32)),
            ((true, false), burn(KvKind::Host(KvElem::F32))),
            ((false, true), host(KvElem::Bf16)),
            ((true, true), burn(KvKind::Host(KvElem::Bf16))),
        ];
        for ((b, bf16), want) in switches {
            assert_eq!(StepperKind::from_switches::<Cpu>(b, bf16).unwrap(), want);
        }
        assert_eq!(StepperKind::default_for::<Cpu>(), host(KvElem::F32));
        for kind in switches
            .map(|s| s.1)
            .into_iter()
            .chain([burn(KvKind::Device)])
        {
            let mut s = LlamaStepper::with_kind(model(&c), 2, 16, kind).unwrap();
            assert_eq!(s.kind(), kind);
            assert_eq!(s.cache.kind(), kind.cache());
            assert_eq!(s.host_decode(), matches!(kind, StepperKind::HostDecoder(_)));
            let out = s.step(&[(1, &[3, 4][..])]).unwrap();
            assert_eq!((out.len(), out[0].len()), (1, c.vocab_size));
            assert_eq!(s.cache.lens(), &[0, 2]);
        }
        // A bfloat16 cache for heads it cannot pack is refused when built.
        c.hidden_size = 40;
        c.num_heads = 4;
        c.num_kv_heads = 4;
        assert!(LlamaStepper::with_kind(model(&c), 1, 8, host(KvElem::Bf16)).is_err());
        assert!(LlamaStepper::with_kind(model(&c), 0, 8, host(KvElem::F32)).is_err());
    }
}
