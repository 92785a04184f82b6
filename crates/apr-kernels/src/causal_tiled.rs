//! The tiled form of [`causal`](crate::causal)'s two passes: every
//! product over positions runs as register tiles of 6 rows x 16 columns of
//! fused multiply-adds, fed by broadcasts of the left-hand side read where
//! it lies and by 16-wide packed strips of the right-hand side (the host
//! decoder's tile shape), instead of one dot product per (query, key)
//! pair (its speed against the pairwise form: `docs/model.md`).
//!
//! Used when the machine has 8-lane vectors and the head width is a
//! multiple of 16 (every preset: 32 or 64); the pairwise form stays for the
//! rest. A block's rows are read where they lie ([`Rows`]: contiguous, or
//! `heads * d` apart in the projections' `[batch, t, heads, d]` layout).
//! Per (batch, head) block of `t` positions of width `d`:
//!
//! ```text
//! forward, 6 queries at a time:   S = Q_i K^T (keys up to the tile's last),
//!                                 P = softmax(scale S) row by row (causal),
//!                                 O_i = P V
//! backward, 24 queries at a time: P = exp(scale Q_i K^T - lse),
//!                                 dS = P * (dO_i V^T - D) * scale,
//!                                 dQ_i = dS K,  dK += dS^T Q_i,  dV += P^T dO_i
//! ```
//!
//! Entries a query may not see are exact zeros in `P` and `dS`, so every
//! product can run over whole 16-key strips. Each product is a chain of
//! fused multiply-adds in key order (or, for `dK` and `dV`, a chain per
//! 24-query block added to the key's sum), so the results differ from the
//! pairwise form only by rounding.

use crate::attention::{dot, softmax};
use crate::causal_shape::{CausalShape, Rows};
use crate::math::exp_nonpositive;
use crate::matmul::{ROWS, VECS, WIDTH};
use pulp::Simd;

/// Query rows per block of the backward pass (a multiple of [`ROWS`]): the
/// depth of the `dK` and `dV` products.
const BLOCK: usize = 4 * ROWS;

/// Whether the tiled form runs for head width `d` on this instruction set.
#[inline(always)]
pub fn usable<S: Simd>(d: usize) -> bool {
    S::F32_LANES * VECS == WIDTH && d > 0 && d.is_multiple_of(WIDTH)
}

/// Rows `0..n` of `x` (`[n, d]`) as strips of [`WIDTH`] rows, each
/// `[d, WIDTH]` (row `jj` of a strip is column `jj` of the strip), the
/// last padded with zeros: the right-hand side of `x' · x^T`.
fn row_strips(x: Rows<'_>, n: usize, out: &mut Vec<f32>) {
    let d = x.d;
    out.clear();
    out.resize(n.div_ceil(WIDTH) * WIDTH * d, 0.0);
    let pad = vec![0.0f32; d];
    for (s, strip) in out.chunks_exact_mut(WIDTH * d).enumerate() {
        let rows: [&[f32]; WIDTH] = std::array::from_fn(|jj| {
            let r = s * WIDTH + jj;
            if r < n {
                x.row(r)
            } else {
                &pad
            }
        });
        // Written in order: column c of the strip's rows.
        for (c, dst) in strip.chunks_exact_mut(WIDTH).enumerate() {
            for (o, row) in dst.iter_mut().zip(&rows) {
                *o = row[c];
            }
        }
    }
}

/// Rows `r0..r0 + n` of `x` as `d / WIDTH` strips of [`WIDTH`] columns,
/// each `[n, WIDTH]`: the right-hand side of `p · x`. A strip's first `m`
/// rows are its first `m * WIDTH` values.
fn col_strips(x: Rows<'_>, r0: usize, n: usize, out: &mut Vec<f32>) {
    out.clear();
    out.resize(n * x.d, 0.0);
    for (s, strip) in out.chunks_exact_mut(n * WIDTH).enumerate() {
        for (r, dst) in strip.chunks_exact_mut(WIDTH).enumerate() {
            dst.copy_from_slice(&x.row(r0 + r)[s * WIDTH..][..WIDTH]);
        }
    }
}

/// `out[ii][j] = a_{i0 + ii} · b_j` for the `out.len()` (1 to [`ROWS`])
/// rows of `a` from `i0` and the keys of the first `strips` strips of `bs`
/// ([`row_strips`]); `out` rows hold at least `strips * WIDTH` values.
#[inline(always)]
fn scores_tile<S: Simd>(
    simd: S,
    a: Rows<'_>,
    i0: usize,
    bs: &[f32],
    strips: usize,
    out: &mut [&mut [f32]],
) {
    let r = out.len();
    let rows: [&[f32]; ROWS] = std::array::from_fn(|i| a.row(i0 + i.min(r - 1)));
    for (s, strip) in bs.chunks_exact(WIDTH * a.d).take(strips).enumerate() {
        rows_tile::<S>(simd, r, &rows, out, strip, s * WIDTH);
    }
}

/// [`row_tile`] for the first `r` (1 to [`ROWS`]) rows of `out`.
#[inline(always)]
fn rows_tile<S: Simd>(
    simd: S,
    r: usize,
    w: &[&[f32]; ROWS],
    out: &mut [&mut [f32]],
    strip: &[f32],
    j: usize,
) {
    match r {
        1 => row_tile::<S, 1>(simd, w, out, strip, j),
        2 => row_tile::<S, 2>(simd, w, out, strip, j),
        3 => row_tile::<S, 3>(simd, w, out, strip, j),
        4 => row_tile::<S, 4>(simd, w, out, strip, j),
        5 => row_tile::<S, 5>(simd, w, out, strip, j),
        _ => row_tile::<S, ROWS>(simd, w, out, strip, j),
    }
}

/// `out_i = sum_j w_i[j] x_j` for the `out.len()` (1 to [`ROWS`]) rows
/// `w_i` of `w` (row stride `stride`, the first `n` keys) and `x` given as
/// [`col_strips`] (`rows` rows each). The kernel reads the rows of `w` in
/// place (six broadcast streams) rather than interleaving them first.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn weighted_tile<S: Simd>(
    simd: S,
    w: &[f32],
    stride: usize,
    n: usize,
    xs: &[f32],
    rows: usize,
    out: &mut [&mut [f32]],
) {
    let r = out.len();
    let w: [&[f32]; ROWS] = std::array::from_fn(|i| &w[i.min(r - 1) * stride..][..n]);
    for (s, strip) in xs.chunks_exact(rows * WIDTH).enumerate() {
        rows_tile::<S>(simd, r, &w, out, &strip[..n * WIDTH], s * WIDTH);
    }
}

/// Columns `j..j + WIDTH` of `out` for its first `R` rows: `out_i =
/// sum_kk w_i[kk] strip[kk]`, `strip` `[n, WIDTH]`, each `w_i` `n` long.
/// The same chain of fused multiply-adds as [`tile`], with the left-hand
/// side read from its rows.
#[inline(always)]
fn row_tile<S: Simd, const R: usize>(
    simd: S,
    w: &[&[f32]; ROWS],
    out: &mut [&mut [f32]],
    strip: &[f32],
    j: usize,
) {
    let zero = simd.splat_f32s(0.0);
    let mut acc = [[zero; VECS]; R];
    let n = strip.len() / WIDTH;
    let w: [&[f32]; R] = std::array::from_fn(|i| &w[i][..n]);
    for (kk, row) in strip.chunks_exact(WIDTH).enumerate() {
        let (wv, _) = S::as_simd_f32s(row);
        for (a, wi) in acc.iter_mut().zip(&w) {
            let s = simd.splat_f32s(wi[kk]);
            for (a, &wv) in a.iter_mut().zip(wv) {
                *a = simd.mul_add_f32s(s, wv, *a);
            }
        }
    }
    for (a, o) in acc.iter().zip(out.iter_mut()) {
        let (ov, _) = S::as_mut_simd_f32s(&mut o[j..j + WIDTH]);
        ov.copy_from_slice(a);
    }
}

/// Columns `j..j + WIDTH` of `out` for its first `R` rows, added to:
/// `out_r += sum_kk lhs[kk * stride + r] strip[kk]`, `strip` `[n, WIDTH]`
/// (the left-hand side is the transpose of `n` rows of `R` values, read in
/// place).
#[inline(always)]
fn col_tile<S: Simd, const R: usize>(
    simd: S,
    lhs: &[f32],
    stride: usize,
    out: &mut [&mut [f32]],
    strip: &[f32],
    j: usize,
) {
    let zero = simd.splat_f32s(0.0);
    let mut acc = [[zero; VECS]; R];
    for (kk, row) in strip.chunks_exact(WIDTH).enumerate() {
        let (wv, _) = S::as_simd_f32s(row);
        let x = &lhs[kk * stride..][..R];
        for (a, &xv) in acc.iter_mut().zip(x) {
            let s = simd.splat_f32s(xv);
            for (a, &wv) in a.iter_mut().zip(wv) {
                *a = simd.mul_add_f32s(s, wv, *a);
            }
        }
    }
    for (a, o) in acc.iter().zip(out.iter_mut()) {
        let (ov, _) = S::as_mut_simd_f32s(&mut o[j..j + WIDTH]);
        for (o, &a) in ov.iter_mut().zip(a) {
            *o = simd.add_f32s(*o, a);
        }
    }
}

/// Forward pass of one block (see [`crate::causal::forward`]): its
/// `t` output rows and log-sum-exps.
#[inline(always)]
pub fn forward<S: Simd>(
    simd: S,
    s: CausalShape,
    [q, k, v]: [Rows<'_>; 3],
    o: &mut [&mut [f32]],
    lse: &mut [f32],
) {
    let (t, scale) = (s.t, s.scale());
    let width = t.div_ceil(WIDTH) * WIDTH;
    let (mut ks, mut vs) = (Vec::new(), Vec::new());
    row_strips(k, t, &mut ks);
    col_strips(v, 0, t, &mut vs);
    let mut sc = vec![0.0f32; ROWS * width];
    for i0 in (0..t).step_by(ROWS) {
        let i1 = (i0 + ROWS).min(t);
        let r = i1 - i0;
        let mut rows: Vec<&mut [f32]> = sc.chunks_exact_mut(width).take(r).collect();
        let strips = i1.div_ceil(WIDTH);
        scores_tile::<S>(simd, q, i0, &ks, strips, &mut rows);
        for (ii, row) in rows.iter_mut().enumerate() {
            let i = i0 + ii;
            lse[i] = softmax::<S>(simd, &mut row[..=i], scale);
            row[i + 1..i1].fill(0.0);
        }
        let outs = &mut o[i0..i1];
        weighted_tile::<S>(simd, &sc, width, i1, &vs, t, outs);
    }
}

/// The inputs of one block's backward pass.
pub struct BackwardIn<'a> {
    /// Queries.
    pub q: Rows<'a>,
    /// Keys.
    pub k: Rows<'a>,
    /// Values.
    pub v: Rows<'a>,
    /// The forward's output.
    pub o: Rows<'a>,
    /// The output's gradient.
    pub go: Rows<'a>,
    /// The forward's log-sum-exp, `[t]`.
    pub lse: &'a [f32],
}

/// Backward pass of one block (see [`crate::causal::backward`]): the
/// gradients are written to the `t` rows of `dq`, `dk`, `dv` (zeros on
/// entry).
#[inline(always)]
pub fn backward<S: Simd>(
    simd: S,
    s: CausalShape,
    x: BackwardIn<'_>,
    [dq, dk, dv]: [&mut [&mut [f32]]; 3],
) {
    let BackwardIn {
        q,
        k,
        v,
        o,
        go,
        lse,
    } = x;
    let (t, scale) = (s.t, s.scale());
    let width = t.div_ceil(WIDTH) * WIDTH;
    let mut bufs: [Vec<f32>; 5] = Default::default();
    let [ks, vks, kc, qc, gc] = &mut bufs;
    row_strips(k, t, ks);
    row_strips(v, t, vks);
    col_strips(k, 0, t, kc);
    // p and ds of a block's rows, `[BLOCK, width]` each.
    let (mut p, mut ds) = (vec![0.0f32; BLOCK * width], vec![0.0f32; BLOCK * width]);
    let (sc, zero) = (simd.splat_f32s(scale), simd.splat_f32s(0.0));
    for b0 in (0..t).step_by(BLOCK) {
        let b1 = (b0 + BLOCK).min(t);
        for i0 in (b0..b1).step_by(ROWS) {
            let i1 = (i0 + ROWS).min(b1);
            let (r, strips) = (i1 - i0, i1.div_ceil(WIDTH));
            let at = (i0 - b0) * width;
            let mut prow: Vec<&mut [f32]> = p[at..].chunks_exact_mut(width).take(r).collect();
            scores_tile::<S>(simd, q, i0, ks, strips, &mut prow);
            let mut drow: Vec<&mut [f32]> = ds[at..].chunks_exact_mut(width).take(r).collect();
            scores_tile::<S>(simd, go, i0, vks, strips, &mut drow);
            for (ii, (pr, dr)) in prow.iter_mut().zip(drow.iter_mut()).enumerate() {
                let i = i0 + ii;
                let di = dot::<S>(simd, go.row(i), o.row(i));
                // p_ij = exp(scale s_ij - lse_i), never above 1; then
                // ds_ij = p_ij (dp_ij - D_i) scale; both zero past i.
                let (l, dvec) = (simd.splat_f32s(lse[i]), simd.splat_f32s(di));
                let (pv, pt) = S::as_mut_simd_f32s(&mut pr[..=i]);
                let (dsv, dst) = S::as_mut_simd_f32s(&mut dr[..=i]);
                for (x, y) in pv.iter_mut().zip(dsv.iter_mut()) {
                    let e = simd.min_f32s(simd.sub_f32s(simd.mul_f32s(*x, sc), l), zero);
                    *x = exp_nonpositive::<S>(simd, e);
                    *y = simd.mul_f32s(simd.mul_f32s(*x, simd.sub_f32s(*y, dvec)), sc);
                }
                for (x, y) in pt.iter_mut().zip(dst.iter_mut()) {
                    *x = (*x * scale - lse[i]).min(0.0).exp();
                    *y = *x * (*y - di) * scale;
                }
                pr[i + 1..b1].fill(0.0);
                dr[i + 1..b1].fill(0.0);
            }
            let outs = &mut dq[i0..i1];
            weighted_tile::<S>(simd, &ds[at..], width, i1, kc, t, outs);
        }
        // dK_j += sum_i ds_ij q_i and dV_j += sum_i p_ij dO_i over the
        // block's rows, 6 keys at a time.
        let n = b1 - b0;
        col_strips(q, b0, n, qc);
        col_strips(go, b0, n, gc);
        for j0 in (0..b1).step_by(ROWS) {
            let j1 = (j0 + ROWS).min(b1);
            let r = j1 - j0;
            for (src, strips, dst) in [(&ds, &*qc, &mut *dk), (&p, &*gc, &mut *dv)] {
                // The left-hand side, keys j0..j1 of the block's n rows, is
                // read in place: row kk of the product is src[kk][j0..j1].
                let lhs = &src[j0..(n - 1) * width + j1];
                let outs = &mut dst[j0..j1];
                for (si, strip) in strips.chunks_exact(n * WIDTH).enumerate() {
                    let j = si * WIDTH;
                    match r {
                        1 => col_tile::<S, 1>(simd, lhs, width, outs, strip, j),
                        2 => col_tile::<S, 2>(simd, lhs, width, outs, strip, j),
                        3 => col_tile::<S, 3>(simd, lhs, width, outs, strip, j),
                        4 => col_tile::<S, 4>(simd, lhs, width, outs, strip, j),
                        5 => col_tile::<S, 5>(simd, lhs, width, outs, strip, j),
                        _ => col_tile::<S, ROWS>(simd, lhs, width, outs, strip, j),
                    }
                }
            }
        }
    }
}
