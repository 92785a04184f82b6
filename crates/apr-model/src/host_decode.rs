//! Cached decoding on the host, without burn: the model's weights copied
//! into the host decoder of `apr-kernels` ([`apr_kernels::decoder`]),
//! which runs on a [`KvCache`] kept in host memory.
//!
//! On the `flex` CPU backend a decode step through burn spends most of its
//! time outside arithmetic: a tensor per op (fresh memory the kernel must
//! zero), strided copies for reshapes and transposes, and per-op dispatch.
//! The host decoder keeps its buffers between steps and fuses the
//! projections. It computes the same function as [`Llama::forward_rows`]
//! (both are built from [`ModelConfig::arch`]; logits agree to about 1e-5,
//! the summation order differs) and gives every row the same bits whatever
//! other rows share the step. burn stays the path for training and for
//! GPUs; the rollout engine uses this one on the CPU backend
//! ([`crate::AprBackend::HOST_DECODE`]).

use crate::cache::{KvCache, KvStore};
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::interop::host_values;
use crate::model::Llama;
use apr_kernels::decoder::{BlockWeights, Decoder, Weights};
use burn::module::Param;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// A model's weights on the host and the buffers of its decode steps.
#[derive(Debug, Clone)]
pub struct HostDecoder {
    config: ModelConfig,
    decoder: Decoder,
}

fn host<B: Backend, const D: usize>(p: &Param<Tensor<B, D>>) -> Result<Vec<f32>> {
    host_values(p.val())
}

impl HostDecoder {
    /// Copies `model`'s weights to the host.
    pub fn new<B: Backend>(model: &Llama<B>) -> Result<Self> {
        let layers = model
            .layers
            .iter()
            .map(|l| {
                Ok(BlockWeights {
                    attn_norm: host(&l.attn_norm)?,
                    wq: host(&l.wq)?,
                    wk: host(&l.wk)?,
                    wv: host(&l.wv)?,
                    wo: host(&l.wo)?,
                    mlp_norm: host(&l.mlp_norm)?,
                    w_gate: host(&l.w_gate)?,
                    w_up: host(&l.w_up)?,
                    w_down: host(&l.w_down)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let weights = Weights {
            embed: host(&model.embed)?,
            layers,
            norm: host(&model.norm)?,
            lm_head: model.lm_head.as_ref().map(host).transpose()?,
        };
        Ok(HostDecoder {
            decoder: Decoder::new(model.config.arch(), weights)?,
            config: model.config.clone(),
        })
    }

    /// The model's shape.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Runs the `(row, new tokens)` pairs of `feed` (rows distinct, tokens
    /// not empty) at their rows' next positions, appends their keys and
    /// values to `cache`, and returns the logits after each row's last new
    /// token, in `feed` order. Same contract as [`Llama::forward_rows`]
    /// without `all`; the cache must be in host memory
    /// ([`KvCache::on_host`]).
    pub fn forward_last<B: Backend>(
        &mut self,
        cache: &mut KvCache<B>,
        feed: &[(usize, &[u32])],
    ) -> Result<Vec<Vec<f32>>> {
        let KvStore::Host(kv) = &mut cache.store else {
            return Err(Error::Input(
                "the host decoder needs a cache in host memory (KvCache::on_host)".into(),
            ));
        };
        Ok(self
            .decoder
            .forward_last(kv, &mut cache.lens, cache.capacity, feed)?)
    }
}

#[cfg(test)]
mod tests;
