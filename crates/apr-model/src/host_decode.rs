//! Cached decoding on the host, without burn: the model's weights copied
//! into plain f32 arrays and a forward pass written for the shapes of
//! decoding (a few new tokens per row, many rows).
//!
//! On the `flex` CPU backend a decode step through burn spends most of its
//! time outside arithmetic: a tensor per op (fresh memory the kernel must
//! zero), strided copies for reshapes and transposes, and per-op dispatch.
//! This path keeps every buffer between steps, fuses the q/k/v and the
//! gate/up projections into one product each, packs the rows' new tokens
//! without padding, applies rotary embeddings in place from a table, and
//! writes keys and values straight into the [`KvCache`]. It computes the
//! same function as [`Llama::forward_rows`] (logits agree to about 1e-5;
//! the summation order differs) and gives every row the same bits whatever
//! other rows share the step. burn stays the path for training and for
//! GPUs; the rollout engine uses this one on the CPU backend
//! ([`crate::AprBackend::HOST_DECODE`]).

use crate::cache::{KvCache, KvStore};
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::interop::host_values;
use crate::model::Llama;
use apr_kernels::attention::{attend_row, HostShape};
use apr_kernels::math::silu_mul;
use apr_kernels::matmul::{matmul, Packed};
use burn::module::Param;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use rayon::prelude::*;

/// One decoder block's weights, `[in, out]` row-major.
#[derive(Debug, Clone)]
struct HostBlock {
    attn_norm: Vec<f32>,
    /// `[hidden, (heads + 2 kv_heads) * head_dim]`: q, k, v side by side.
    wqkv: Packed,
    wo: Packed,
    mlp_norm: Vec<f32>,
    /// `[hidden, 2 intermediate]`: gate, then up.
    wgu: Packed,
    w_down: Packed,
}

/// Buffers kept from step to step (a step allocates nothing large).
#[derive(Debug, Clone, Default)]
struct Scratch {
    x: Vec<f32>,
    xn: Vec<f32>,
    qkv: Vec<f32>,
    att: Vec<f32>,
    gu: Vec<f32>,
    act: Vec<f32>,
    logits: Vec<f32>,
}

/// A model's weights on the host and the buffers of its decode steps.
#[derive(Debug, Clone)]
pub struct HostDecoder {
    config: ModelConfig,
    /// `[vocab, hidden]`.
    embed: Vec<f32>,
    /// `[hidden, vocab]` (the embedding transposed when tied).
    head: Packed,
    norm: Vec<f32>,
    layers: Vec<HostBlock>,
    /// `[max_seq_len, head_dim / 2]`, the angles computed as in
    /// [`Llama::forward`] (in f32, as Hugging Face).
    cos: Vec<f32>,
    sin: Vec<f32>,
    scratch: Scratch,
}

fn host<B: Backend, const D: usize>(p: &Param<Tensor<B, D>>) -> Result<Vec<f32>> {
    host_values(p.val())
}

/// `[k, n_i]` matrices side by side: `[k, sum n_i]`.
fn side_by_side(mats: &[(&[f32], usize)], k: usize) -> Vec<f32> {
    let n: usize = mats.iter().map(|m| m.1).sum();
    let mut out = Vec::with_capacity(k * n);
    for r in 0..k {
        for &(m, w) in mats {
            out.extend_from_slice(&m[r * w..(r + 1) * w]);
        }
    }
    out
}

/// `out[i] = x[i] / sqrt(mean(x_row^2) + eps) * w`, row by row.
fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let h = w.len();
    for (xr, or) in x.chunks_exact(h).zip(out.chunks_exact_mut(h)) {
        let ss: f32 = xr.iter().map(|v| v * v).sum();
        let inv = 1.0 / (ss / h as f32 + eps).sqrt();
        for ((o, &v), &g) in or.iter_mut().zip(xr).zip(w) {
            *o = v * inv * g;
        }
    }
}

/// Rotate-half rotary embedding of one head in place.
fn rope(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    let half = cos.len();
    let (a, b) = x.split_at_mut(half);
    for j in 0..half {
        let (x1, x2) = (a[j], b[j]);
        a[j] = x1 * cos[j] - x2 * sin[j];
        b[j] = x2 * cos[j] + x1 * sin[j];
    }
}

impl HostDecoder {
    /// Copies `model`'s weights to the host.
    pub fn new<B: Backend>(model: &Llama<B>) -> Result<Self> {
        let c = model.config.clone();
        let (h, v, hd) = (c.hidden_size, c.vocab_size, c.head_dim());
        let (qn, kvn, inter) = (c.num_heads * hd, c.num_kv_heads * hd, c.intermediate_size);
        let embed = host(&model.embed)?;
        let head = match &model.lm_head {
            Some(w) => host(w)?,
            None => host_values(model.embed.val().transpose())?,
        };
        let head = Packed::new(&head, h, v);
        let layers = model
            .layers
            .iter()
            .map(|l| {
                let (wq, wk, wv) = (host(&l.wq)?, host(&l.wk)?, host(&l.wv)?);
                let (wg, wu) = (host(&l.w_gate)?, host(&l.w_up)?);
                Ok(HostBlock {
                    attn_norm: host(&l.attn_norm)?,
                    wqkv: Packed::new(
                        &side_by_side(&[(&wq, qn), (&wk, kvn), (&wv, kvn)], h),
                        h,
                        qn + 2 * kvn,
                    ),
                    wo: Packed::new(&host(&l.wo)?, qn, h),
                    mlp_norm: host(&l.mlp_norm)?,
                    wgu: Packed::new(
                        &side_by_side(&[(&wg, inter), (&wu, inter)], h),
                        h,
                        2 * inter,
                    ),
                    w_down: Packed::new(&host(&l.w_down)?, inter, h),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let half = hd / 2;
        let (mut cos, mut sin) = (
            Vec::with_capacity(c.max_seq_len * half),
            Vec::with_capacity(c.max_seq_len * half),
        );
        let inv = c.rope_inv_freq();
        for p in 0..c.max_seq_len {
            for f in &inv {
                let a = (p as f32) * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        Ok(HostDecoder {
            norm: host(&model.norm)?,
            config: c,
            embed,
            head,
            layers,
            cos,
            sin,
            scratch: Scratch::default(),
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
    /// without `all`.
    pub fn forward_last<B: Backend>(
        &mut self,
        cache: &mut KvCache<B>,
        feed: &[(usize, &[u32])],
    ) -> Result<Vec<Vec<f32>>> {
        let c = &self.config;
        cache.check_feed(feed, c.vocab_size)?;
        let (h, nh, nkv, hd) = (c.hidden_size, c.num_heads, c.num_kv_heads, c.head_dim());
        let KvStore::Host(kv) = &mut cache.store else {
            return Err(Error::Input(
                "the host decoder needs a cache in host memory (KvCache::on_host)".into(),
            ));
        };
        if kv.layers.len() != c.num_layers || cache.kv_heads != nkv || cache.head_dim != hd {
            return Err(Error::Input(format!(
                "a cache of {} layers x {} kv heads x {} for a model of {} x {nkv} x {hd}",
                kv.layers.len(),
                cache.kv_heads,
                cache.head_dim,
                c.num_layers
            )));
        }
        let lens = &mut cache.lens;
        if let Some(&(r, t)) = feed
            .iter()
            .find(|&&(r, t)| lens[r] + t.len() > c.max_seq_len)
        {
            return Err(Error::Input(format!(
                "row {r}: {} + {} tokens exceed the context window {}",
                lens[r],
                t.len(),
                c.max_seq_len
            )));
        }
        let (inter, v, eps) = (c.intermediate_size, c.vocab_size, c.rms_norm_eps as f32);
        let (qw, half) = ((nh + 2 * nkv) * hd, hd / 2);
        kv.grow(lens, feed, cache.capacity, nkv, hd);
        let elem = kv.elem;
        let mut starts = Vec::with_capacity(feed.len() + 1);
        starts.push(0);
        for &(_, t) in feed {
            starts.push(starts.last().copied().unwrap_or(0) + t.len());
        }
        let total = starts.last().copied().unwrap_or(0);
        let s = &mut self.scratch;
        s.x.clear();
        for &(_, toks) in feed {
            for &t in toks {
                let t = t as usize;
                s.x.extend_from_slice(&self.embed[t * h..(t + 1) * h]);
            }
        }
        for (buf, n) in [
            (&mut s.xn, total * h),
            (&mut s.qkv, total * qw),
            (&mut s.att, total * nh * hd),
            (&mut s.gu, total * 2 * inter),
            (&mut s.act, total * inter),
        ] {
            buf.resize(n, 0.0);
        }
        let shape = HostShape {
            heads: nh,
            kv_heads: nkv,
            head_dim: hd,
            q_pos: qw,
            q_head: hd,
            o_pos: nh * hd,
            o_head: hd,
        };
        for (layer, rows) in self.layers.iter().zip(kv.layers.iter_mut()) {
            rms_norm(&s.x, &layer.attn_norm, eps, &mut s.xn);
            matmul(&s.xn, total, &layer.wqkv, &mut s.qkv, false);
            for (fi, &(slot, toks)) in feed.iter().enumerate() {
                let (ks, vs) = &mut rows[slot];
                for i in 0..toks.len() {
                    let pos = lens[slot] + i;
                    let (cos, sin) = (
                        &self.cos[pos * half..(pos + 1) * half],
                        &self.sin[pos * half..(pos + 1) * half],
                    );
                    let q = &mut s.qkv[(starts[fi] + i) * qw..][..qw];
                    for head in q[..(nh + nkv) * hd].chunks_exact_mut(hd) {
                        rope(head, cos, sin);
                    }
                    let block = kv.block[slot];
                    for g in 0..nkv {
                        let at = g * block + pos;
                        elem.store(ks, at, &q[(nh + g) * hd..][..hd]);
                        elem.store(vs, at, &q[(nh + nkv + g) * hd..][..hd]);
                    }
                }
            }
            let mut outs = Vec::with_capacity(feed.len());
            let mut rest = &mut s.att[..];
            for &(_, t) in feed {
                let (o, r) = rest.split_at_mut(t.len() * nh * hd);
                outs.push(o);
                rest = r;
            }
            let (rows, qkv, lens, blocks) = (&*rows, &s.qkv, &*lens, &kv.block);
            outs.into_par_iter().enumerate().for_each(|(fi, o)| {
                let (slot, toks) = feed[fi];
                let q = &qkv[starts[fi] * qw..];
                let row = elem.row(&rows[slot], lens[slot], blocks[slot]);
                attend_row(&shape, q, toks.len(), row, o);
            });
            matmul(&s.att, total, &layer.wo, &mut s.x, true);
            rms_norm(&s.x, &layer.mlp_norm, eps, &mut s.xn);
            matmul(&s.xn, total, &layer.wgu, &mut s.gu, false);
            for (a, gu) in s
                .act
                .chunks_exact_mut(inter)
                .zip(s.gu.chunks_exact(2 * inter))
            {
                let (g, u) = gu.split_at(inter);
                silu_mul(g, u, a);
            }
            matmul(&s.act, total, &layer.w_down, &mut s.x, true);
        }
        for &(r, toks) in feed {
            lens[r] += toks.len();
        }
        let b = feed.len();
        s.att.clear();
        for &end in &starts[1..] {
            s.att.extend_from_slice(&s.x[(end - 1) * h..end * h]);
        }
        rms_norm(&s.att, &self.norm, eps, &mut s.xn[..b * h]);
        s.logits.resize(b * v, 0.0);
        matmul(&s.xn, b, &self.head, &mut s.logits, false);
        Ok(s.logits.chunks_exact(v).map(<[f32]>::to_vec).collect())
    }
}

#[cfg(test)]
mod tests;
