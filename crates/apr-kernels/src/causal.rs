//! Causal self-attention for training on host memory: a forward pass that
//! keeps only the output and each query's log-sum-exp, and a backward pass
//! that rebuilds the probabilities from them (the FlashAttention recipe).
//! Neither materialises a `[t, t]` matrix, and both visit only the pairs
//! a query may see (`j <= i`), half of the square the dense form computes.
//!
//! One block per (batch, head), independent, spread over rayon's threads.
//! The inputs are `[batch, heads, t, head_dim]` (each block contiguous) or
//! `[batch, t, heads, head_dim]` ([`CausalShape::token_major`]: the layout
//! the projections produce, which the training path passes without
//! reordering). Two forms compute the products ([`Form`]): register tiles
//! (`causal_tiled`, where the machine has 8-lane vectors and
//! the head width is a multiple of 16) and one dot product per pair.
//!
//! ```text
//! forward:   s_ij = scale q_i·k_j,  lse_i = log sum_j e^s_ij,
//!            p_ij = e^(s_ij - lse_i),  o_i = sum_j p_ij v_j
//! backward:  D_i = dO_i·o_i,  ds_ij = p_ij (dO_i·v_j - D_i)
//!            dq_i = scale sum_j ds_ij k_j,  dk_j = scale sum_i ds_ij q_i,
//!            dv_j = sum_i p_ij dO_i
//! ```

use crate::attention::{dot, scores, softmax, weighted_sum};
pub use crate::causal_shape::{CausalShape, Rows};
use crate::causal_tiled::{self, BackwardIn};
use crate::math::exp_nonpositive;
use pulp::{Arch, Simd, WithSimd};
use rayon::prelude::*;

/// Forward pass: the output (in the inputs' layout) and each query's
/// log-sum-exp (`[blocks, t]`).
///
/// # Panics
/// When a slice does not have the shape's length (a bug in the caller).
pub fn forward(s: CausalShape, q: &[f32], k: &[f32], v: &[f32]) -> (Vec<f32>, Vec<f32>) {
    forward_in(Form::Tiled, s, q, k, v)
}

/// How the passes compute their products.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// Register tiles (`causal_tiled`) where
    /// the machine and head width allow, else pairwise.
    Tiled,
    /// One dot product per (query, key) pair, on contiguous blocks (other
    /// layouts are reordered on the way in and out).
    Pairwise,
}

impl Form {
    /// Whether this form runs tiled on this machine for width `d`.
    fn tiled(self, d: usize) -> bool {
        struct Probe(usize);
        impl WithSimd for Probe {
            type Output = bool;
            #[inline(always)]
            fn with_simd<S: Simd>(self, _: S) -> bool {
                causal_tiled::usable::<S>(self.0)
            }
        }
        self == Form::Tiled && Arch::new().dispatch(Probe(d))
    }
}

/// [`forward`] in the given form.
pub fn forward_in(
    form: Form,
    s: CausalShape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    s.check(&[q, k, v]);
    let (t, d) = (s.t, s.d);
    let tiled = form.tiled(d);
    if !tiled && s.token_major {
        let h = s.head_major();
        let (q, k, v) = (
            s.reorder(q, false),
            s.reorder(k, false),
            s.reorder(v, false),
        );
        let (o, lse) = forward_in(Form::Pairwise, h, &q, &k, &v);
        return (s.reorder(&o, true), lse);
    }
    let mut o = vec![0.0f32; q.len()];
    let mut lse = vec![0.0f32; s.blocks * t];
    if tiled {
        s.split_rows(&mut o)
            .into_par_iter()
            .zip(lse.par_chunks_mut(t))
            .enumerate()
            .for_each(|(blk, (mut o, lse))| {
                let x = [s.rows(q, blk), s.rows(k, blk), s.rows(v, blk)];
                Arch::new().dispatch(TiledForward {
                    s,
                    x,
                    o: &mut o,
                    lse,
                });
            });
        return (o, lse);
    }
    o.par_chunks_mut(t * d)
        .zip(lse.par_chunks_mut(t))
        .enumerate()
        .for_each(|(b, (o, lse))| {
            let at = b * t * d..(b + 1) * t * d;
            let (q, k, v) = (&q[at.clone()], &k[at.clone()], &v[at]);
            Arch::new().dispatch(Forward { s, q, k, v, o, lse });
        });
    (o, lse)
}

struct TiledForward<'a, 'o> {
    s: CausalShape,
    x: [Rows<'a>; 3],
    o: &'a mut [&'o mut [f32]],
    lse: &'a mut [f32],
}

impl WithSimd for TiledForward<'_, '_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        causal_tiled::forward(simd, self.s, self.x, self.o, self.lse);
    }
}

struct Forward<'a> {
    s: CausalShape,
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    o: &'a mut [f32],
    lse: &'a mut [f32],
}

impl WithSimd for Forward<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Forward { s, q, k, v, o, lse } = self;
        let (t, d, scale) = (s.t, s.d, s.scale());
        let mut p = vec![0.0f32; t];
        for i in 0..t {
            let p = &mut p[..=i];
            scores::<S>(simd, &q[i * d..(i + 1) * d], k, p);
            lse[i] = softmax::<S>(simd, p, scale);
            weighted_sum::<S>(simd, p, v, &mut o[i * d..(i + 1) * d]);
        }
    }
}

/// Backward pass: `dq`, `dk`, `dv` (each `[blocks, t, d]`) from the inputs,
/// the forward's output and log-sum-exp, and the output's gradient `go`.
///
/// # Panics
/// When a slice does not have the shape's length (a bug in the caller).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    s: CausalShape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    o: &[f32],
    lse: &[f32],
    go: &[f32],
) -> [Vec<f32>; 3] {
    backward_in(Form::Tiled, s, q, k, v, o, lse, go)
}

/// [`backward`] in the given form.
#[allow(clippy::too_many_arguments)]
pub fn backward_in(
    form: Form,
    s: CausalShape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    o: &[f32],
    lse: &[f32],
    go: &[f32],
) -> [Vec<f32>; 3] {
    s.check(&[q, k, v, o, go]);
    assert_eq!(lse.len(), s.blocks * s.t, "log-sum-exp of the wrong length");
    let (t, d) = (s.t, s.d);
    let tiled = form.tiled(d);
    if !tiled && s.token_major {
        let h = s.head_major();
        let r = |x| s.reorder(x, false);
        let g = backward_in(Form::Pairwise, h, &r(q), &r(k), &r(v), &r(o), lse, &r(go));
        return g.map(|g| s.reorder(&g, true));
    }
    let n = q.len();
    let (mut dq, mut dk, mut dv) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
    if tiled {
        let (rq, rk, rv) = (
            s.split_rows(&mut dq),
            s.split_rows(&mut dk),
            s.split_rows(&mut dv),
        );
        rq.into_par_iter().zip(rk).zip(rv).enumerate().for_each(
            |(blk, ((mut dq, mut dk), mut dv))| {
                let rows = |x| s.rows(x, blk);
                let x = BackwardIn {
                    q: rows(q),
                    k: rows(k),
                    v: rows(v),
                    o: rows(o),
                    go: rows(go),
                    lse: &lse[blk * t..(blk + 1) * t],
                };
                Arch::new().dispatch(TiledBackward {
                    s,
                    x,
                    grads: [&mut dq, &mut dk, &mut dv],
                });
            },
        );
        return [dq, dk, dv];
    }
    dq.par_chunks_mut(t * d)
        .zip(dk.par_chunks_mut(t * d))
        .zip(dv.par_chunks_mut(t * d))
        .enumerate()
        .for_each(|(b, ((dq, dk), dv))| {
            let at = b * t * d..(b + 1) * t * d;
            Arch::new().dispatch(Backward {
                s,
                q: &q[at.clone()],
                k: &k[at.clone()],
                v: &v[at.clone()],
                o: &o[at.clone()],
                go: &go[at],
                lse: &lse[b * t..(b + 1) * t],
                dq,
                dk,
                dv,
            });
        });
    [dq, dk, dv]
}

struct TiledBackward<'a, 'g> {
    s: CausalShape,
    x: BackwardIn<'a>,
    grads: [&'a mut [&'g mut [f32]]; 3],
}

impl WithSimd for TiledBackward<'_, '_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        causal_tiled::backward(simd, self.s, self.x, self.grads);
    }
}

struct Backward<'a> {
    s: CausalShape,
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    o: &'a [f32],
    go: &'a [f32],
    lse: &'a [f32],
    dq: &'a mut [f32],
    dk: &'a mut [f32],
    dv: &'a mut [f32],
}

impl WithSimd for Backward<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Backward {
            s,
            q,
            k,
            v,
            o,
            go,
            lse,
            dq,
            dk,
            dv,
        } = self;
        let (t, d, scale) = (s.t, s.d, s.scale());
        let (mut p, mut ds) = (vec![0.0f32; t], vec![0.0f32; t]);
        // A tile's p and ds, key-major (`[keys, TILE]`), and a row of sums.
        let (mut pt, mut dst) = (vec![0.0f32; t * TILE], vec![0.0f32; t * TILE]);
        let mut sum = vec![0.0f32; d];
        for i0 in (0..t).step_by(TILE) {
            let i1 = (i0 + TILE).min(t);
            // Keys i0..i1 are hidden from the tile's first rows: zeros.
            pt[i0 * TILE..i1 * TILE].fill(0.0);
            dst[i0 * TILE..i1 * TILE].fill(0.0);
            for i in i0..i1 {
                let row = i * d..(i + 1) * d;
                let (qi, goi) = (&q[row.clone()], &go[row.clone()]);
                let (p, ds) = (&mut p[..=i], &mut ds[..=i]);
                // p_ij = exp(scale q_i·k_j - lse_i), never above 1.
                scores::<S>(simd, qi, k, p);
                let (sc, l) = (simd.splat_f32s(scale), simd.splat_f32s(lse[i]));
                let (pv, tail) = S::as_mut_simd_f32s(p);
                for x in pv.iter_mut() {
                    *x = exp_nonpositive::<S>(simd, simd.sub_f32s(simd.mul_f32s(*x, sc), l));
                }
                for x in tail.iter_mut() {
                    *x = (*x * scale - lse[i]).min(0.0).exp();
                }
                // ds_ij = p_ij (dO_i·v_j - dO_i·o_i), scaled for dq and dk.
                scores::<S>(simd, goi, v, ds);
                let di = dot::<S>(simd, goi, &o[row.clone()]);
                for (x, &pj) in ds.iter_mut().zip(p.iter()) {
                    *x = pj * (*x - di) * scale;
                }
                weighted_sum::<S>(simd, ds, k, &mut dq[row]);
                let r = i - i0;
                for ((&pj, &dsj), (ptj, dstj)) in p
                    .iter()
                    .zip(ds.iter())
                    .zip(pt.chunks_exact_mut(TILE).zip(dst.chunks_exact_mut(TILE)))
                {
                    ptj[r] = pj;
                    dstj[r] = dsj;
                }
            }
            // dk_j += sum_i ds_ij q_i and dv_j += sum_i p_ij dO_i over the
            // tile's rows, one key at a time.
            let n = i1 - i0;
            let (qt, gt) = (&q[i0 * d..i1 * d], &go[i0 * d..i1 * d]);
            let keys = dk.chunks_exact_mut(d).zip(dv.chunks_exact_mut(d));
            for ((dkj, dvj), (ptj, dstj)) in keys
                .zip(pt.chunks_exact(TILE).zip(dst.chunks_exact(TILE)))
                .take(i1)
            {
                weighted_sum::<S>(simd, &dstj[..n], qt, &mut sum);
                for (a, b) in dkj.iter_mut().zip(&sum) {
                    *a += b;
                }
                weighted_sum::<S>(simd, &ptj[..n], gt, &mut sum);
                for (a, b) in dvj.iter_mut().zip(&sum) {
                    *a += b;
                }
            }
        }
    }
}

/// Query rows per tile of the backward pass.
const TILE: usize = 32;

#[cfg(test)]
mod tests;
