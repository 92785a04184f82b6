//! Cached decoding on the host: a [`LlamaArch`] decoder's weights in plain
//! f32 arrays and a forward pass written for the shapes of decoding (a few
//! new tokens per row, many rows).
//!
//! It keeps every buffer between steps, fuses the q/k/v and the gate/up
//! projections into one product each, packs the rows' new tokens without
//! padding, applies rotary embeddings in place from a table, and writes
//! keys and values straight into the [`HostKv`]. Every row gets the same
//! bits whatever other rows share the step. `apr-model` builds one from a
//! burn model (its `HostDecoder`) and tests it against the burn forward.

use crate::arch::LlamaArch;
use crate::attention::{attend_row, HostShape};
use crate::error::{Error, Result};
use crate::kv::{check_feed, HostKv};
use crate::math::{rms_norm, rope, silu_mul};
use crate::matmul::{matmul, Packed};
use rayon::prelude::*;

/// One decoder block's weights as given, linear maps `[in, out]`
/// row-major.
#[derive(Debug, Clone)]
pub struct BlockWeights {
    /// RMSNorm weight before attention, `[hidden]`.
    pub attn_norm: Vec<f32>,
    /// `[hidden, heads * head_dim]`.
    pub wq: Vec<f32>,
    /// `[hidden, kv_heads * head_dim]`.
    pub wk: Vec<f32>,
    /// `[hidden, kv_heads * head_dim]`.
    pub wv: Vec<f32>,
    /// `[heads * head_dim, hidden]`.
    pub wo: Vec<f32>,
    /// RMSNorm weight before the MLP, `[hidden]`.
    pub mlp_norm: Vec<f32>,
    /// `[hidden, intermediate]`.
    pub w_gate: Vec<f32>,
    /// `[hidden, intermediate]`.
    pub w_up: Vec<f32>,
    /// `[intermediate, hidden]`.
    pub w_down: Vec<f32>,
}

/// A decoder's weights as given.
#[derive(Debug, Clone)]
pub struct Weights {
    /// `[vocab, hidden]`.
    pub embed: Vec<f32>,
    /// The blocks, in order.
    pub layers: Vec<BlockWeights>,
    /// Final RMSNorm weight, `[hidden]`.
    pub norm: Vec<f32>,
    /// `[hidden, vocab]`; `None` when tied to the embedding.
    pub lm_head: Option<Vec<f32>>,
}

/// One block's weights as the step uses them.
#[derive(Debug, Clone)]
struct Block {
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

/// A decoder's weights on the host and the buffers of its decode steps.
#[derive(Debug, Clone)]
pub struct Decoder {
    arch: LlamaArch,
    /// `[vocab, hidden]`.
    embed: Vec<f32>,
    /// `[hidden, vocab]`.
    head: Packed,
    norm: Vec<f32>,
    layers: Vec<Block>,
    /// `[max_seq_len, head_dim / 2]` ([`LlamaArch::rope_tables`]).
    cos: Vec<f32>,
    sin: Vec<f32>,
    scratch: Scratch,
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

/// `[rows, cols]` row-major, transposed.
fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for (r, row) in x.chunks_exact(cols).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            out[c * rows + r] = v;
        }
    }
    out
}

/// An error unless `got` holds `want` values.
fn check_len(name: &str, got: &[f32], want: usize) -> Result<()> {
    if got.len() == want {
        return Ok(());
    }
    Err(Error::Input(format!(
        "{name}: {} values where the architecture needs {want}",
        got.len()
    )))
}

impl Decoder {
    /// A decoder of `arch` with `weights`; an error where a weight's size
    /// does not fit the architecture.
    pub fn new(arch: LlamaArch, weights: Weights) -> Result<Self> {
        let (h, v, hd) = (arch.hidden, arch.vocab, arch.head_dim());
        let (qn, kvn, inter) = (arch.heads * hd, arch.kv_heads * hd, arch.intermediate);
        if weights.layers.len() != arch.layers || weights.lm_head.is_none() != arch.tied {
            return Err(Error::Input(format!(
                "{} blocks, head {}, for an architecture of {} blocks, head {}",
                weights.layers.len(),
                if weights.lm_head.is_some() {
                    "own"
                } else {
                    "tied"
                },
                arch.layers,
                if arch.tied { "tied" } else { "own" },
            )));
        }
        check_len("embed", &weights.embed, v * h)?;
        check_len("norm", &weights.norm, h)?;
        let head = match &weights.lm_head {
            Some(w) => {
                check_len("lm_head", w, h * v)?;
                Packed::new(w, h, v)
            }
            None => Packed::new(&transpose(&weights.embed, v, h), h, v),
        };
        let layers = weights
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                for (name, w, n) in [
                    ("attn_norm", &l.attn_norm, h),
                    ("wq", &l.wq, h * qn),
                    ("wk", &l.wk, h * kvn),
                    ("wv", &l.wv, h * kvn),
                    ("wo", &l.wo, qn * h),
                    ("mlp_norm", &l.mlp_norm, h),
                    ("w_gate", &l.w_gate, h * inter),
                    ("w_up", &l.w_up, h * inter),
                    ("w_down", &l.w_down, inter * h),
                ] {
                    check_len(&format!("layer {i} {name}"), w, n)?;
                }
                let qkv = side_by_side(&[(&l.wq, qn), (&l.wk, kvn), (&l.wv, kvn)], h);
                let gu = side_by_side(&[(&l.w_gate, inter), (&l.w_up, inter)], h);
                Ok(Block {
                    attn_norm: l.attn_norm.clone(),
                    wqkv: Packed::new(&qkv, h, qn + 2 * kvn),
                    wo: Packed::new(&l.wo, qn, h),
                    mlp_norm: l.mlp_norm.clone(),
                    wgu: Packed::new(&gu, h, 2 * inter),
                    w_down: Packed::new(&l.w_down, inter, h),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let (cos, sin) = arch.rope_tables();
        Ok(Decoder {
            arch,
            embed: weights.embed,
            head,
            norm: weights.norm,
            layers,
            cos,
            sin,
            scratch: Scratch::default(),
        })
    }

    /// The architecture.
    pub fn arch(&self) -> &LlamaArch {
        &self.arch
    }

    /// Runs the `(row, new tokens)` pairs of `feed` (rows distinct, tokens
    /// not empty: [`check_feed`]) at their rows' next positions, appends
    /// their keys and values to `kv`, advances `lens` (the rows' lengths,
    /// at most `capacity` each), and returns the logits after each row's
    /// last new token, in `feed` order.
    pub fn forward_last(
        &mut self,
        kv: &mut HostKv,
        lens: &mut [usize],
        capacity: usize,
        feed: &[(usize, &[u32])],
    ) -> Result<Vec<Vec<f32>>> {
        let c = &self.arch;
        check_feed(lens, capacity, c.vocab, feed)?;
        let (h, nh, nkv, hd) = (c.hidden, c.heads, c.kv_heads, c.head_dim());
        if kv.shape() != (c.layers, nkv, hd) {
            let (l, k, d) = kv.shape();
            return Err(Error::Input(format!(
                "a cache of {l} layers x {k} kv heads x {d} for a model of {} x {nkv} x {hd}",
                c.layers
            )));
        }
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
        let (inter, v, eps) = (c.intermediate, c.vocab, c.rms_norm_eps as f32);
        let (qw, half) = ((nh + 2 * nkv) * hd, hd / 2);
        kv.grow(lens, feed, capacity);
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
        for (li, layer) in self.layers.iter().enumerate() {
            rms_norm(&s.x, &layer.attn_norm, eps, &mut s.xn);
            matmul(&s.xn, total, &layer.wqkv, &mut s.qkv, false);
            for (fi, &(slot, toks)) in feed.iter().enumerate() {
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
                    for g in 0..nkv {
                        let key = &q[(nh + g) * hd..][..hd];
                        let value = &q[(nh + nkv + g) * hd..][..hd];
                        kv.store(li, slot, g, pos, key, value);
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
            let (kv, qkv, lens) = (&*kv, &s.qkv, &*lens);
            outs.into_par_iter().enumerate().for_each(|(fi, o)| {
                let (slot, toks) = feed[fi];
                let q = &qkv[starts[fi] * qw..];
                attend_row(&shape, q, toks.len(), kv.row(li, slot, lens[slot]), o);
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
