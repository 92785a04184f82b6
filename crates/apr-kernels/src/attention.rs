//! Attention of a row's new queries over its keys and values in the
//! host-memory KV cache: each query reads only its own row's valid prefix
//! (no padding to the batch's longest row, no dense copy of the cache).
//! Vector instructions are picked at run time through `pulp`.

use crate::kv16;
use crate::math::exp_nonpositive;
use pulp::{Arch, Simd, WithSimd};

/// The shapes and layouts of one step.
pub struct HostShape {
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (grouped-query attention when fewer).
    pub kv_heads: usize,
    /// Width of a head.
    pub head_dim: usize,
    /// Distance between consecutive positions of one head, in `q`.
    pub q_pos: usize,
    /// Distance between heads of one position, in `q`.
    pub q_head: usize,
    /// Distance between consecutive positions of one head, in `out`.
    pub o_pos: usize,
    /// Distance between heads of one position, in `out`.
    pub o_head: usize,
}

impl HostShape {
    /// `q` and `out` as `[heads, t, head_dim]` blocks (the burn path).
    pub fn head_major(heads: usize, kv_heads: usize, head_dim: usize, t: usize) -> Self {
        HostShape {
            heads,
            kv_heads,
            head_dim,
            q_pos: head_dim,
            q_head: t * head_dim,
            o_pos: head_dim,
            o_head: t * head_dim,
        }
    }
}

/// A row's keys and values in the cache.
#[derive(Clone, Copy)]
pub struct CachedRow<'a> {
    /// Positions held before this step.
    pub len: usize,
    /// Positions per head block of `keys` and `values`.
    pub block: usize,
    /// `[kv_heads, block, hd]`, the step's new tokens already written.
    pub keys: &'a [f32],
    /// Same layout as `keys`.
    pub values: &'a [f32],
    /// `keys` and `values` hold bfloat16 words (`crate::kv16`): `hd / 2`
    /// elements per position instead of `hd`.
    pub bf16: bool,
}

/// Causal attention of one row. `q` holds `n` query positions (laid out
/// as `s` says), at absolute positions `row.len..row.len + n`, each seeing
/// keys `0..=position`. Writes the `n` positions of `out` (other elements
/// are left alone).
pub fn attend_row(s: &HostShape, q: &[f32], n: usize, row: CachedRow, out: &mut [f32]) {
    // Compiled once per instruction set and picked at run time.
    Arch::new().dispatch(Attend { s, q, n, row, out });
}

struct Attend<'a> {
    s: &'a HostShape,
    q: &'a [f32],
    n: usize,
    row: CachedRow<'a>,
    out: &'a mut [f32],
}

/// Keys scored together (independent accumulator chains).
const KEYS: usize = 4;

impl WithSimd for Attend<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Attend { s, q, n, row, out } = self;
        let CachedRow {
            len,
            mut block,
            mut keys,
            mut values,
            bf16,
        } = row;
        let hd = s.head_dim;
        let group = s.heads / s.kv_heads;
        let scale = 1.0 / (hd as f32).sqrt();
        let mut p = vec![0.0f32; len + n];
        // bfloat16 words: read in place by the vector kernels where they
        // apply, otherwise unpacked here into f32 first.
        let packed = bf16 && kv16::fits::<S>();
        let unpacked;
        if bf16 && !packed {
            let l = len + n;
            let mut buf = vec![0.0f32; 2 * s.kv_heads * l * hd];
            let (ku, vu) = buf.split_at_mut(s.kv_heads * l * hd);
            for (src, dst) in [(keys, ku), (values, vu)] {
                let words: &[u32] = bytemuck::cast_slice(src);
                for g in 0..s.kv_heads {
                    let from = &words[g * block * hd / 2..][..l * hd / 2];
                    kv16::unpack(from, &mut dst[g * l * hd..][..l * hd]);
                }
            }
            unpacked = buf;
            (keys, values) = unpacked.split_at(s.kv_heads * l * hd);
            block = l;
        }
        let width = if packed { hd / 2 } else { hd };
        for h in 0..s.heads {
            let g = h / group;
            let kb = &keys[g * block * width..];
            let vb = &values[g * block * width..];
            for i in 0..n {
                let qi = &q[h * s.q_head + i * s.q_pos..][..hd];
                let l = len + i + 1;
                let o = &mut out[h * s.o_head + i * s.o_pos..][..hd];
                if packed {
                    let (kw, vw) = (bytemuck::cast_slice(kb), bytemuck::cast_slice(vb));
                    kv16::scores::<S>(simd, qi, kw, &mut p[..l]);
                    softmax::<S>(simd, &mut p[..l], scale);
                    kv16::weighted_sum::<S>(simd, &p[..l], vw, o);
                } else {
                    scores::<S>(simd, qi, kb, &mut p[..l]);
                    softmax::<S>(simd, &mut p[..l], scale);
                    weighted_sum::<S>(simd, &p[..l], vb, o);
                }
            }
        }
    }
}

/// `p = softmax(scale * p)` in place (`p` not empty); returns the
/// log-sum-exp of `scale * p` (what a backward pass needs to rebuild `p`).
#[inline(always)]
pub fn softmax<S: Simd>(simd: S, p: &mut [f32], scale: f32) -> f32 {
    let sc = simd.splat_f32s(scale);
    let (pv, pt) = S::as_mut_simd_f32s(p);
    let mut mv = simd.splat_f32s(f32::NEG_INFINITY);
    for x in pv.iter_mut() {
        *x = simd.mul_f32s(*x, sc);
        mv = simd.max_f32s(mv, *x);
    }
    let mut max = simd.reduce_max_f32s(mv);
    for x in pt.iter_mut() {
        *x *= scale;
        max = max.max(*x);
    }
    let m = simd.splat_f32s(max);
    let mut sv = simd.splat_f32s(0.0);
    for x in pv.iter_mut() {
        *x = exp_nonpositive::<S>(simd, simd.sub_f32s(*x, m));
        sv = simd.add_f32s(sv, *x);
    }
    let mut sum = simd.reduce_sum_f32s(sv);
    for x in pt.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    let inv = 1.0 / sum;
    let iv = simd.splat_f32s(inv);
    for x in pv.iter_mut() {
        *x = simd.mul_f32s(*x, iv);
    }
    for x in pt.iter_mut() {
        *x *= inv;
    }
    max + sum.ln()
}

/// `p[j] = q · k_j` for the first `p.len()` keys of `k` (`[keys, hd]`),
/// `KEYS` keys at a time.
#[inline(always)]
pub fn scores<S: Simd>(simd: S, q: &[f32], k: &[f32], p: &mut [f32]) {
    let hd = q.len();
    let (qv, qt) = S::as_simd_f32s(q);
    let zero = simd.splat_f32s(0.0);
    let key = |j: usize| &k[j * hd..(j + 1) * hd];
    let blocks = p.len() / KEYS * KEYS;
    for j0 in (0..blocks).step_by(KEYS) {
        let ks: [&[f32]; KEYS] = std::array::from_fn(|j| key(j0 + j));
        let kv: [&[S::f32s]; KEYS] = std::array::from_fn(|j| S::as_simd_f32s(ks[j]).0);
        let mut acc = [zero; KEYS];
        for (c, &x) in qv.iter().enumerate() {
            for j in 0..KEYS {
                acc[j] = simd.mul_add_f32s(x, kv[j][c], acc[j]);
            }
        }
        for j in 0..KEYS {
            let mut sum = simd.reduce_sum_f32s(acc[j]);
            for (x, y) in qt.iter().zip(S::as_simd_f32s(ks[j]).1) {
                sum = x.mul_add(*y, sum);
            }
            p[j0 + j] = sum;
        }
    }
    for (j, pj) in p.iter_mut().enumerate().skip(blocks) {
        *pj = dot::<S>(simd, q, key(j));
    }
}

/// `a · b`.
#[inline(always)]
pub fn dot<S: Simd>(simd: S, a: &[f32], b: &[f32]) -> f32 {
    let ((av, at), (bv, bt)) = (S::as_simd_f32s(a), S::as_simd_f32s(b));
    let mut acc = simd.splat_f32s(0.0);
    for (&x, &y) in av.iter().zip(bv) {
        acc = simd.mul_add_f32s(x, y, acc);
    }
    let mut sum = simd.reduce_sum_f32s(acc);
    for (x, y) in at.iter().zip(bt) {
        sum = x.mul_add(*y, sum);
    }
    sum
}

/// Vectors of the output kept in registers while the keys stream by.
const OUT_VECS: usize = 4;

/// `out = sum_j w[j] * v_j` over the first `w.len()` rows of `v`
/// (`[rows, out.len()]`): `OUT_VECS` vectors of `out` at a time held in two sets of
/// registers (even and odd rows), so the multiply-adds of consecutive rows
/// do not wait on each other.
#[inline(always)]
pub fn weighted_sum<S: Simd>(simd: S, w: &[f32], v: &[f32], out: &mut [f32]) {
    let hd = out.len();
    let width = OUT_VECS * S::F32_LANES;
    let zero = simd.splat_f32s(0.0);
    let mut c = 0;
    while c + width <= hd {
        let mut even = [zero; OUT_VECS];
        let mut odd = [zero; OUT_VECS];
        let row = |j: usize| S::as_simd_f32s(&v[j * hd + c..][..width]).0;
        let pairs = w.chunks_exact(2);
        let last = pairs.remainder().first().map(|&x| (x, w.len() - 1));
        for (j, pair) in pairs.enumerate() {
            let (a, b) = (simd.splat_f32s(pair[0]), simd.splat_f32s(pair[1]));
            let (va, vb) = (row(2 * j), row(2 * j + 1));
            for t in 0..OUT_VECS {
                even[t] = simd.mul_add_f32s(a, va[t], even[t]);
                odd[t] = simd.mul_add_f32s(b, vb[t], odd[t]);
            }
        }
        if let Some((x, j)) = last {
            let (a, va) = (simd.splat_f32s(x), row(j));
            for t in 0..OUT_VECS {
                even[t] = simd.mul_add_f32s(a, va[t], even[t]);
            }
        }
        let ov = S::as_mut_simd_f32s(&mut out[c..c + width]).0;
        for t in 0..OUT_VECS {
            ov[t] = simd.add_f32s(even[t], odd[t]);
        }
        c += width;
    }
    if c < hd {
        let tail = &mut out[c..];
        tail.fill(0.0);
        for (j, &x) in w.iter().enumerate() {
            axpy::<S>(simd, x, &v[j * hd + c..(j + 1) * hd], tail);
        }
    }
}

/// `out += w * x`.
#[inline(always)]
pub fn axpy<S: Simd>(simd: S, w: f32, x: &[f32], out: &mut [f32]) {
    let ((xv, xt), (ov, ot)) = (S::as_simd_f32s(x), S::as_mut_simd_f32s(out));
    let ws = simd.splat_f32s(w);
    for (o, &x) in ov.iter_mut().zip(xv) {
        *o = simd.mul_add_f32s(ws, x, *o);
    }
    for (o, x) in ot.iter_mut().zip(xt) {
        *o = w.mul_add(*x, *o);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_sums_of_any_width_and_count() {
        struct W<'a>(&'a [f32], &'a [f32], &'a mut [f32]);
        impl WithSimd for W<'_> {
            type Output = ();
            fn with_simd<T: Simd>(self, simd: T) {
                weighted_sum::<T>(simd, self.0, self.1, self.2)
            }
        }
        for (hd, keys) in [(32, 7), (40, 8), (3, 5), (64, 1)] {
            let w: Vec<f32> = (0..keys).map(|j| (j % 3) as f32 - 1.0).collect();
            let v: Vec<f32> = (0..keys * hd).map(|i| (i % 11) as f32).collect();
            let mut out = vec![f32::NAN; hd];
            Arch::new().dispatch(W(&w, &v, &mut out));
            for (d, o) in out.iter().enumerate() {
                let want: f32 = (0..keys).map(|j| w[j] * v[j * hd + d]).sum();
                assert_eq!(*o, want, "hd {hd}, keys {keys}, column {d}");
            }
        }
    }

    #[test]
    fn one_head_by_hand() {
        // hd 2, one head; cached key 0 = (1, 0), new key 1 = (0, 1);
        // values (1, 2) and (3, 4). Query (ln 2 * sqrt 2, 0) at position 1
        // scores ln 2 and 0: weights 2/3 and 1/3.
        let s = HostShape::head_major(1, 1, 2, 1);
        let q = [std::f32::consts::LN_2 * 2f32.sqrt(), 0.0];
        let keys = [1.0, 0.0, 0.0, 1.0, 9.0, 9.0, 9.0, 9.0];
        let values = [1.0, 2.0, 3.0, 4.0, 9.0, 9.0, 9.0, 9.0];
        let mut out = [0.0; 2];
        let row = |len| CachedRow {
            len,
            block: 4,
            keys: &keys,
            values: &values,
            bf16: false,
        };
        attend_row(&s, &q, 1, row(1), &mut out);
        let want = [2.0 / 3.0 + 1.0, 4.0 / 3.0 + 4.0 / 3.0];
        assert!(
            (out[0] - want[0]).abs() < 1e-6 && (out[1] - want[1]).abs() < 1e-6,
            "{out:?}"
        );
        // The first of two new tokens sees only key 0: the value itself.
        let s2 = HostShape::head_major(1, 1, 2, 2);
        let q2 = [0.3, 0.1, 0.0, 0.0];
        let mut out2 = [0.0; 4];
        attend_row(&s2, &q2, 2, row(0), &mut out2);
        assert_eq!(&out2[..2], &[1.0, 2.0]);
        assert_eq!(&out2[2..], &[2.0, 3.0]);
        // Nine keys of width 11: the 4-key blocks, the tail key, the
        // non-vector tail of each row.
        let (q, k): (Vec<f32>, Vec<f32>) = (
            (0..11).map(|i| i as f32).collect(),
            (0..99).map(|i| (i % 7) as f32).collect(),
        );
        let mut p = [0.0; 9];
        scores::<pulp::Scalar>(pulp::Scalar, &q, &k, &mut p);
        let mut p2 = [0.0; 9];
        struct S<'a>(&'a [f32], &'a [f32], &'a mut [f32]);
        impl WithSimd for S<'_> {
            type Output = ();
            fn with_simd<T: Simd>(self, simd: T) {
                scores::<T>(simd, self.0, self.1, self.2)
            }
        }
        Arch::new().dispatch(S(&q, &k, &mut p2));
        for j in 0..9 {
            let want: f32 = (0..11).map(|i| q[i] * k[j * 11 + i]).sum();
            assert_eq!(p[j], want, "key {j}");
            assert_eq!(p2[j], want, "key {j}");
        }
    }

    /// A bfloat16 row gives what an f32 row holding the rounded keys and
    /// values gives, on the vector kernels and on the unpacking fallback
    /// (forced with pulp's scalar "vectors").
    #[test]
    fn bf16_rows_match_f32_rows_of_the_rounded_values() {
        let (heads, kv_heads, hd, block, len, n) = (4, 2, 32, 9, 5, 3);
        let s = HostShape::head_major(heads, kv_heads, hd, n);
        let val = |i: usize, k: usize| ((i * 31 + k * 17) % 97) as f32 / 40.0 - 1.2;
        let q: Vec<f32> = (0..heads * n * hd).map(|i| val(i, 1)).collect();
        let kf: Vec<f32> = (0..kv_heads * block * hd).map(|i| val(i, 2)).collect();
        let vf: Vec<f32> = (0..kv_heads * block * hd).map(|i| val(i, 3)).collect();
        let mut packed = [vec![0u32; kf.len() / 2], vec![0u32; vf.len() / 2]];
        let mut rounded = [vec![0.0; kf.len()], vec![0.0; vf.len()]];
        for (i, f) in [&kf, &vf].into_iter().enumerate() {
            kv16::pack(f, &mut packed[i]);
            kv16::unpack(&packed[i], &mut rounded[i]);
        }
        let as_f32: Vec<Vec<f32>> = packed
            .iter()
            .map(|w| bytemuck::cast_slice::<u32, f32>(w).to_vec())
            .collect();
        let mut want = vec![0.0; heads * n * hd];
        let f32_row = CachedRow {
            len,
            block,
            keys: &rounded[0],
            values: &rounded[1],
            bf16: false,
        };
        attend_row(&s, &q, n, f32_row, &mut want);
        let bf16_row = CachedRow {
            len,
            block,
            keys: &as_f32[0],
            values: &as_f32[1],
            bf16: true,
        };
        let mut vector = vec![f32::NAN; want.len()];
        attend_row(&s, &q, n, bf16_row, &mut vector);
        let mut scalar = vec![f32::NAN; want.len()];
        Attend {
            s: &s,
            q: &q,
            n,
            row: bf16_row,
            out: &mut scalar,
        }
        .with_simd(pulp::Scalar::new());
        for (name, got) in [("vector", &vector), ("scalar", &scalar)] {
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!((g - w).abs() < 1e-5, "{name} {i}: {g} vs {w}");
            }
        }
    }
}
