//! Keys and values kept in bfloat16 in the host cache
//! (`apr_model::KvCache::on_host_bf16`): half the
//! memory, and half the bytes attention reads at every decoding step, which
//! is what bounds attention on the CPU.
//!
//! Layout: a head's `hd` values (a multiple of [`CHUNK`]) are stored as
//! `hd / 2` 32-bit words, in chunks of 16 values; word `i` of a chunk holds
//! value `i` of the chunk in its low half and value `8 + i` in its high
//! half. Loaded as eight 32-bit lanes, a chunk then gives the chunk's first
//! eight values (the low halves shifted up) and its last eight (the high
//! halves masked) as two ordinary f32 vectors, in order: no shuffles, and
//! the query and the output keep their natural layout.
//!
//! Rounding: to nearest, ties to even (what PyTorch's `to(bfloat16)` does);
//! a NaN stays a NaN. Products and sums stay f32.

use pulp::Simd;

/// Values per packed chunk (eight words).
pub const CHUNK: usize = 16;
/// Words per packed chunk.
const WORDS: usize = CHUNK / 2;

/// `x` rounded to bfloat16 (the top 16 bits of an f32).
#[inline]
pub fn to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        // Keep it a NaN (a quiet one) whatever its payload.
        return ((b >> 16) | 0x40) as u16;
    }
    // Round to nearest, ties to even: add 0x7fff plus the lowest kept bit.
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// The f32 value of a bfloat16.
#[inline]
pub fn from_bf16(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// Packs one head's values (`src.len()` a multiple of [`CHUNK`]) into
/// `src.len() / 2` words.
pub fn pack(src: &[f32], dst: &mut [u32]) {
    debug_assert!(src.len().is_multiple_of(CHUNK) && dst.len() == src.len() / 2);
    for (s, d) in src.chunks_exact(CHUNK).zip(dst.chunks_exact_mut(WORDS)) {
        for (i, w) in d.iter_mut().enumerate() {
            *w = u32::from(to_bf16(s[i])) | (u32::from(to_bf16(s[WORDS + i])) << 16);
        }
    }
}

/// The values of packed words (the inverse of [`pack`], after rounding).
pub fn unpack(src: &[u32], dst: &mut [f32]) {
    debug_assert!(dst.len().is_multiple_of(CHUNK) && src.len() == dst.len() / 2);
    for (s, d) in src.chunks_exact(WORDS).zip(dst.chunks_exact_mut(CHUNK)) {
        for (i, &w) in s.iter().enumerate() {
            d[i] = from_bf16(w as u16);
            d[WORDS + i] = from_bf16((w >> 16) as u16);
        }
    }
}

/// Whether the vector kernels below apply: eight f32 lanes, so that one
/// vector of words is one chunk.
#[inline(always)]
pub fn fits<S: Simd>() -> bool {
    S::F32_LANES == WORDS
}

/// The two f32 vectors (values 0..8 and 8..16) of a chunk's words.
#[inline(always)]
fn halves<S: Simd>(simd: S, w: S::u32s) -> (S::f32s, S::f32s) {
    let lo = simd.wrapping_dyn_shl_u32s(w, simd.splat_u32s(16));
    let hi = simd.and_u32s(w, simd.splat_u32s(0xffff_0000));
    (simd.transmute_f32s_u32s(lo), simd.transmute_f32s_u32s(hi))
}

/// Keys scored together (independent accumulator chains).
const KEYS: usize = 4;

/// `p[j] = q · k_j` for the first `p.len()` keys of `k` (`[keys, hd / 2]`
/// packed words), when [`fits`].
#[inline(always)]
pub fn scores<S: Simd>(simd: S, q: &[f32], k: &[u32], p: &mut [f32]) {
    let hd = q.len();
    let words = hd / 2;
    let (qv, _) = S::as_simd_f32s(q);
    let zero = simd.splat_f32s(0.0);
    let key = |j: usize| S::as_simd_u32s(&k[j * words..(j + 1) * words]).0;
    let blocks = p.len() / KEYS * KEYS;
    for j0 in (0..blocks).step_by(KEYS) {
        let kv: [&[S::u32s]; KEYS] = std::array::from_fn(|j| key(j0 + j));
        let mut acc = [zero; KEYS];
        for (c, q2) in qv.chunks_exact(2).enumerate() {
            for j in 0..KEYS {
                let (lo, hi) = halves(simd, kv[j][c]);
                acc[j] = simd.mul_add_f32s(q2[0], lo, acc[j]);
                acc[j] = simd.mul_add_f32s(q2[1], hi, acc[j]);
            }
        }
        for j in 0..KEYS {
            p[j0 + j] = simd.reduce_sum_f32s(acc[j]);
        }
    }
    for (j, pj) in p.iter_mut().enumerate().skip(blocks) {
        let mut acc = zero;
        for (c, q2) in qv.chunks_exact(2).enumerate() {
            let (lo, hi) = halves(simd, key(j)[c]);
            acc = simd.mul_add_f32s(q2[0], lo, acc);
            acc = simd.mul_add_f32s(q2[1], hi, acc);
        }
        *pj = simd.reduce_sum_f32s(acc);
    }
}

/// Chunks of the output kept in registers while the values stream by.
const OUT_CHUNKS: usize = 2;

/// `out = sum_j w[j] * v_j` over the first `w.len()` rows of `v`
/// (`[rows, out.len() / 2]` packed words), when [`fits`]: `OUT_CHUNKS`
/// chunks of `out` at a time, in two sets of registers (even and odd rows).
#[inline(always)]
pub fn weighted_sum<S: Simd>(simd: S, w: &[f32], v: &[u32], out: &mut [f32]) {
    let hd = out.len();
    let words = hd / 2;
    let zero = simd.splat_f32s(0.0);
    let row = |j: usize| S::as_simd_u32s(&v[j * words..(j + 1) * words]).0;
    let chunks = hd / CHUNK;
    let mut c0 = 0;
    while c0 < chunks {
        let n = OUT_CHUNKS.min(chunks - c0);
        let mut even = [[zero; 2]; OUT_CHUNKS];
        let mut odd = [[zero; 2]; OUT_CHUNKS];
        let pairs = w.chunks_exact(2);
        let last = pairs.remainder().first().map(|&x| (x, w.len() - 1));
        for (j, pair) in pairs.enumerate() {
            let (a, b) = (simd.splat_f32s(pair[0]), simd.splat_f32s(pair[1]));
            let (va, vb) = (row(2 * j), row(2 * j + 1));
            for t in 0..n {
                let (lo, hi) = halves(simd, va[c0 + t]);
                even[t][0] = simd.mul_add_f32s(a, lo, even[t][0]);
                even[t][1] = simd.mul_add_f32s(a, hi, even[t][1]);
                let (lo, hi) = halves(simd, vb[c0 + t]);
                odd[t][0] = simd.mul_add_f32s(b, lo, odd[t][0]);
                odd[t][1] = simd.mul_add_f32s(b, hi, odd[t][1]);
            }
        }
        if let Some((x, j)) = last {
            let (a, va) = (simd.splat_f32s(x), row(j));
            for t in 0..n {
                let (lo, hi) = halves(simd, va[c0 + t]);
                even[t][0] = simd.mul_add_f32s(a, lo, even[t][0]);
                even[t][1] = simd.mul_add_f32s(a, hi, even[t][1]);
            }
        }
        let ov = S::as_mut_simd_f32s(&mut out[c0 * CHUNK..(c0 + n) * CHUNK]).0;
        for t in 0..n {
            ov[2 * t] = simd.add_f32s(even[t][0], odd[t][0]);
            ov[2 * t + 1] = simd.add_f32s(even[t][1], odd[t][1]);
        }
        c0 += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulp::{Arch, WithSimd};

    #[test]
    fn rounds_to_nearest_even_by_hand() {
        // 1.0 is exact: 0x3f80.
        assert_eq!(to_bf16(1.0), 0x3f80);
        assert_eq!(from_bf16(0x3f80), 1.0);
        // 1 + 2^-8 is halfway between 1.0 (even) and 1 + 2^-7: down.
        assert_eq!(to_bf16(1.0 + 2f32.powi(-8)), 0x3f80);
        // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6: up.
        assert_eq!(to_bf16(1.0 + 3.0 * 2f32.powi(-8)), 0x3f82);
        // Just above halfway rounds up.
        assert_eq!(to_bf16(1.0 + 2f32.powi(-8) + 2f32.powi(-20)), 0x3f81);
        assert_eq!(to_bf16(-2.5), 0xc020);
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
        assert_eq!(from_bf16(to_bf16(f32::INFINITY)), f32::INFINITY);
    }

    #[test]
    fn pack_puts_values_0_and_8_in_one_word_and_unpack_inverts_it() {
        let src: Vec<f32> = (0..32).map(|i| i as f32).collect();
        let mut words = vec![0; 16];
        pack(&src, &mut words);
        assert_eq!(
            words[0],
            u32::from(to_bf16(0.0)) | u32::from(to_bf16(8.0)) << 16
        );
        assert_eq!(
            words[9],
            u32::from(to_bf16(17.0)) | u32::from(to_bf16(25.0)) << 16
        );
        let mut back = vec![0.0; 32];
        unpack(&words, &mut back);
        // Small integers are exact in bfloat16.
        assert_eq!(back, src);
    }

    /// The kernels against the f32 formulas on the rounded values.
    #[test]
    fn kernels_match_f32_on_the_rounded_values() {
        struct K<'a>(
            &'a [f32],
            &'a [u32],
            &'a [u32],
            &'a mut [f32],
            &'a mut [f32],
        );
        impl WithSimd for K<'_> {
            type Output = bool;
            fn with_simd<S: Simd>(self, simd: S) -> bool {
                if !fits::<S>() {
                    return false;
                }
                let K(q, k, v, p, out) = self;
                scores::<S>(simd, q, k, p);
                weighted_sum::<S>(simd, p, v, out);
                true
            }
        }
        let val = |i: usize, s: usize| ((i * 37 + s) % 101) as f32 / 50.0 - 1.0;
        for (hd, keys) in [(16, 1), (32, 7), (64, 9), (48, 4)] {
            let q: Vec<f32> = (0..hd).map(|i| val(i, 1)).collect();
            let kf: Vec<f32> = (0..keys * hd).map(|i| val(i, 2)).collect();
            let vf: Vec<f32> = (0..keys * hd).map(|i| val(i, 3)).collect();
            let (mut k, mut v) = (vec![0; keys * hd / 2], vec![0; keys * hd / 2]);
            for j in 0..keys {
                pack(&kf[j * hd..][..hd], &mut k[j * hd / 2..][..hd / 2]);
                pack(&vf[j * hd..][..hd], &mut v[j * hd / 2..][..hd / 2]);
            }
            let (mut kr, mut vr) = (vec![0.0; keys * hd], vec![0.0; keys * hd]);
            unpack(&k, &mut kr);
            unpack(&v, &mut vr);
            let mut p = vec![0.0; keys];
            let mut out = vec![f32::NAN; hd];
            if !Arch::new().dispatch(K(&q, &k, &v, &mut p, &mut out)) {
                return; // no 8-lane vectors here: the cache unpacks instead
            }
            for j in 0..keys {
                let want: f32 = (0..hd).map(|d| q[d] * kr[j * hd + d]).sum();
                assert!(
                    (p[j] - want).abs() < 1e-4,
                    "hd {hd} key {j}: {} vs {want}",
                    p[j]
                );
            }
            for d in 0..hd {
                let want: f32 = (0..keys).map(|j| p[j] * vr[j * hd + d]).sum();
                assert!((out[d] - want).abs() < 1e-4, "hd {hd} column {d}");
            }
        }
    }
}
