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
mod tests {
    use super::*;

    /// Dense reference in f64: output and the three gradients of
    /// `sum(o * w)`.
    #[allow(clippy::type_complexity)]
    fn dense(
        s: CausalShape,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        w: &[f32],
    ) -> (Vec<f64>, [Vec<f64>; 3]) {
        let (t, d) = (s.t, s.d);
        let scale = 1.0 / (d as f64).sqrt();
        let n = q.len();
        let (mut o, mut dq, mut dk, mut dv) =
            (vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        let at = |b: usize, i: usize, c: usize| (b * t + i) * d + c;
        for b in 0..s.blocks {
            for i in 0..t {
                let sc: Vec<f64> = (0..=i)
                    .map(|j| {
                        (0..d)
                            .map(|c| q[at(b, i, c)] as f64 * k[at(b, j, c)] as f64)
                            .sum::<f64>()
                            * scale
                    })
                    .collect();
                let m = sc.iter().cloned().fold(f64::MIN, f64::max);
                let z: f64 = sc.iter().map(|x| (x - m).exp()).sum();
                let p: Vec<f64> = sc.iter().map(|x| (x - m).exp() / z).collect();
                for c in 0..d {
                    o[at(b, i, c)] = (0..=i).map(|j| p[j] * v[at(b, j, c)] as f64).sum();
                }
                // dO = w; dp_j = w_i·v_j; ds_j = p_j (dp_j - sum_j p_j dp_j).
                let dp: Vec<f64> = (0..=i)
                    .map(|j| {
                        (0..d)
                            .map(|c| w[at(b, i, c)] as f64 * v[at(b, j, c)] as f64)
                            .sum()
                    })
                    .collect();
                let mean: f64 = (0..=i).map(|j| p[j] * dp[j]).sum();
                for j in 0..=i {
                    let ds = p[j] * (dp[j] - mean) * scale;
                    for c in 0..d {
                        dq[at(b, i, c)] += ds * k[at(b, j, c)] as f64;
                        dk[at(b, j, c)] += ds * q[at(b, i, c)] as f64;
                        dv[at(b, j, c)] += p[j] * w[at(b, i, c)] as f64;
                    }
                }
            }
        }
        (o, [dq, dk, dv])
    }

    fn close(ours: &[f32], want: &[f64], tol: f64) {
        let worst = ours
            .iter()
            .zip(want)
            .map(|(&a, &b)| (a as f64 - b).abs())
            .fold(0.0, f64::max);
        assert!(worst < tol, "max difference {worst}");
    }

    #[test]
    fn two_positions_by_hand() {
        // d 1 (scale 1): q = k = (1, 1): s = [[1], [1, 1]], so query 1
        // averages v = (2, 4): o = (2, 3); lse = (1, 1 + ln 2).
        let s = CausalShape::of([1, 1, 2, 1]);
        let (o, lse) = forward(s, &[1.0, 1.0], &[1.0, 1.0], &[2.0, 4.0]);
        close(&o, &[2.0, 3.0], 1e-6);
        close(&lse, &[1.0, 1.0 + 2f64.ln()], 1e-6);
        // With dO = (0, 1): dv = (1/2, 1/2); ds_1 = p (dp - D) = 1/2 (2 - 3) and
        // 1/2 (4 - 3): dq_1 = -1/2 + 1/2 = 0, dk = (-1/2, 1/2), dq_0 = 0.
        let [dq, dk, dv] = backward(
            s,
            &[1.0, 1.0],
            &[1.0, 1.0],
            &[2.0, 4.0],
            &o,
            &lse,
            &[0.0, 1.0],
        );
        close(&dv, &[0.5, 0.5], 1e-6);
        close(&dk, &[-0.5, 0.5], 1e-6);
        close(&dq, &[0.0, 0.0], 1e-6);
    }

    /// Both forms against the f64 reference. Head widths 32, 16 and 64
    /// take the tiled form (on machines with 8-lane vectors); lengths that
    /// are not multiples of the tiles (6 queries, 16 keys, 24-query blocks)
    /// leave partial tiles everywhere.
    #[test]
    fn matches_the_dense_form_in_f64() {
        let shapes = [
            (3, 37, 8),
            (2, 19, 32),
            (1, 70, 13),
            (2, 53, 16),
            (1, 100, 64),
            (1, 1, 32),
            (2, 24, 32),
        ];
        for form in [Form::Tiled, Form::Pairwise] {
            for (blocks, t, d) in shapes {
                let s = CausalShape::of([1, blocks, t, d]);
                let mut rng = crate::rng::SplitMix::new(t as u64);
                let n = blocks * t * d;
                let (q, k, v, w) = (
                    rng.normal_vec(n, 1.0),
                    rng.normal_vec(n, 1.0),
                    rng.normal_vec(n, 1.0),
                    rng.normal_vec(n, 1.0),
                );
                let (o, lse) = forward_in(form, s, &q, &k, &v);
                let (want_o, want) = dense(s, &q, &k, &v, &w);
                close(&o, &want_o, 1e-5);
                let got = backward_in(form, s, &q, &k, &v, &o, &lse, &w);
                for (g, w) in got.iter().zip(&want) {
                    close(g, w, 1e-4);
                }
            }
        }
    }

    /// The two forms agree to rounding, and the tiled form's log-sum-exp
    /// is the pairwise one's (the same softmax over the same scores, up to
    /// the order of the multiply-adds).
    #[test]
    fn tiled_and_pairwise_forms_agree() {
        let s = CausalShape::of([1, 2, 61, 32]);
        let mut rng = crate::rng::SplitMix::new(7);
        let n = s.blocks * s.t * s.d;
        let x: Vec<Vec<f32>> = (0..4).map(|_| rng.normal_vec(n, 1.0)).collect();
        let (o1, l1) = forward_in(Form::Tiled, s, &x[0], &x[1], &x[2]);
        let (o2, l2) = forward_in(Form::Pairwise, s, &x[0], &x[1], &x[2]);
        let as64 = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
        close(&o1, &as64(&o2), 1e-5);
        close(&l1, &as64(&l2), 1e-5);
        let g1 = backward_in(Form::Tiled, s, &x[0], &x[1], &x[2], &o1, &l1, &x[3]);
        let g2 = backward_in(Form::Pairwise, s, &x[0], &x[1], &x[2], &o2, &l2, &x[3]);
        for (a, b) in g1.iter().zip(&g2) {
            close(a, &as64(b), 1e-4);
        }
    }

    /// `[batch, t, heads, d]` inputs give the `[batch, heads, t, d]` results
    /// reordered, in both forms (the pairwise one reorders its inputs; the
    /// tiled one reads the rows in place); the log-sum-exps are per block
    /// either way.
    #[test]
    fn token_major_inputs_give_the_same_results() {
        let (b, h, t) = (2, 3, 29);
        for d in [32, 8] {
            let hm = CausalShape::of([b, h, t, d]);
            let tm = CausalShape::token_major([b, t, h, d]);
            let mut rng = crate::rng::SplitMix::new(d as u64);
            let n = b * h * t * d;
            let x: Vec<Vec<f32>> = (0..4).map(|_| rng.normal_vec(n, 1.0)).collect();
            // x given token-major; the same values head-major.
            let hx: Vec<Vec<f32>> = x.iter().map(|x| tm.reorder(x, false)).collect();
            // By hand: row (b 1, t 5, head 2) is block 1 * 3 + 2's row 5.
            assert_eq!(
                &hx[0][((3 + 2) * t + 5) * d..][..d],
                &x[0][((t + 5) * h + 2) * d..][..d]
            );
            assert_eq!(tm.reorder(&hx[0], true), x[0]);
            for form in [Form::Tiled, Form::Pairwise] {
                let (o, lse) = forward_in(form, tm, &x[0], &x[1], &x[2]);
                let (ho, hlse) = forward_in(form, hm, &hx[0], &hx[1], &hx[2]);
                assert_eq!(tm.reorder(&o, false), ho);
                assert_eq!(lse, hlse);
                let g = backward_in(form, tm, &x[0], &x[1], &x[2], &o, &lse, &x[3]);
                let hg = backward_in(form, hm, &hx[0], &hx[1], &hx[2], &ho, &hlse, &hx[3]);
                for (g, hg) in g.iter().zip(&hg) {
                    assert_eq!(&tm.reorder(g, false), hg);
                }
            }
        }
    }
}
