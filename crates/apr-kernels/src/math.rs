//! Element-wise functions of the host decoder: with the CPU's vector
//! instructions (picked at run time through `pulp`) a vector `e^x` and the
//! SwiGLU activation; in plain loops RMSNorm and the rotary embedding.

use pulp::{Arch, Simd, WithSimd};

/// `e^x` for `x <= 0`, lane by lane, to about 2 ulp; inputs below -87 give
/// about `e^-87` (1.6e-38) rather than smaller numbers or zero. Cephes'
/// `expf`: `x = n ln 2 + r`, `|r| <= ln 2 / 2`, a degree-5 polynomial for
/// `e^r`, and `2^n` built in the exponent bits.
#[inline(always)]
pub fn exp_nonpositive<S: Simd>(simd: S, x: S::f32s) -> S::f32s {
    // 1.5 * 2^23: adding it rounds to an integer held in the low bits.
    const ROUND: f32 = 12_582_912.0;
    let c = |v: f32| simd.splat_f32s(v);
    let x = simd.max_f32s(x, c(-87.0));
    let t = simd.add_f32s(simd.mul_f32s(x, c(std::f32::consts::LOG2_E)), c(ROUND));
    let n = simd.sub_f32s(t, c(ROUND));
    let r = simd.mul_add_f32s(n, c(-0.693_359_4), x);
    let r = simd.mul_add_f32s(n, c(2.121_944_4e-4), r);
    let mut p = c(1.987_569_1e-4);
    for k in [1.398_2e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5] {
        p = simd.mul_add_f32s(p, r, c(k));
    }
    let r2 = simd.mul_f32s(r, r);
    let er = simd.add_f32s(simd.mul_add_f32s(p, r2, r), c(1.0));
    // n + 127 in the exponent field: 2^n.
    let bits = simd.sub_u32s(
        simd.transmute_u32s_f32s(t),
        simd.transmute_u32s_f32s(c(ROUND - 127.0)),
    );
    let two_n = simd.transmute_f32s_u32s(simd.wrapping_dyn_shl_u32s(bits, simd.splat_u32s(23)));
    simd.mul_f32s(er, two_n)
}

/// `out[i] = silu(g[i]) * u[i]` with `silu(g) = g / (1 + e^-g)`, computed
/// as `g / (1 + e^-g)` for `g >= 0` and `g e^g / (1 + e^g)` below (the
/// exponential only ever of a non-positive number).
///
/// # Panics
/// When the slices differ in length (a bug in the caller).
pub fn silu_mul(g: &[f32], u: &[f32], out: &mut [f32]) {
    assert!(g.len() == u.len() && g.len() == out.len());
    Arch::new().dispatch(SiluMul { g, u, out });
}

struct SiluMul<'a> {
    g: &'a [f32],
    u: &'a [f32],
    out: &'a mut [f32],
}

impl WithSimd for SiluMul<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let SiluMul { g, u, out } = self;
        let (gv, gt) = S::as_simd_f32s(g);
        let (uv, ut) = S::as_simd_f32s(u);
        let (ov, ot) = S::as_mut_simd_f32s(out);
        let one = simd.splat_f32s(1.0);
        for ((o, &g), &u) in ov.iter_mut().zip(gv).zip(uv) {
            let e = exp_nonpositive::<S>(simd, simd.neg_f32s(simd.abs_f32s(g)));
            let num = simd.select_f32s(
                simd.less_than_f32s(g, simd.splat_f32s(0.0)),
                simd.mul_f32s(g, e),
                g,
            );
            *o = simd.mul_f32s(simd.div_f32s(num, simd.add_f32s(one, e)), u);
        }
        for ((o, &g), &u) in ot.iter_mut().zip(gt).zip(ut) {
            *o = g / (1.0 + (-g).exp()) * u;
        }
    }
}

/// The gradients of `h = silu(g) * u` given `dh`: `du = dh silu(g)` and
/// `dg = dh u s (1 + g (1 - s))` with `s = 1 / (1 + e^-g)` (computed from
/// `e^-|g|`, as [`silu_mul`]).
///
/// # Panics
/// When the slices differ in length (a bug in the caller).
pub fn silu_mul_backward(g: &[f32], u: &[f32], dh: &[f32], dg: &mut [f32], du: &mut [f32]) {
    let n = g.len();
    assert!(u.len() == n && dh.len() == n && dg.len() == n && du.len() == n);
    Arch::new().dispatch(SiluMulBackward { g, u, dh, dg, du });
}

struct SiluMulBackward<'a> {
    g: &'a [f32],
    u: &'a [f32],
    dh: &'a [f32],
    dg: &'a mut [f32],
    du: &'a mut [f32],
}

impl WithSimd for SiluMulBackward<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let SiluMulBackward { g, u, dh, dg, du } = self;
        let (gv, gt) = S::as_simd_f32s(g);
        let (uv, ut) = S::as_simd_f32s(u);
        let (hv, ht) = S::as_simd_f32s(dh);
        let (dgv, dgt) = S::as_mut_simd_f32s(dg);
        let (duv, dut) = S::as_mut_simd_f32s(du);
        let one = simd.splat_f32s(1.0);
        let ins = gv.iter().zip(uv).zip(hv);
        for (((&g, &u), &h), (dg, du)) in ins.zip(dgv.iter_mut().zip(duv.iter_mut())) {
            let e = exp_nonpositive::<S>(simd, simd.neg_f32s(simd.abs_f32s(g)));
            let num = simd.select_f32s(simd.less_than_f32s(g, simd.splat_f32s(0.0)), e, one);
            let sig = simd.div_f32s(num, simd.add_f32s(one, e));
            *du = simd.mul_f32s(h, simd.mul_f32s(g, sig));
            let slope = simd.mul_add_f32s(g, simd.sub_f32s(one, sig), one);
            *dg = simd.mul_f32s(simd.mul_f32s(h, u), simd.mul_f32s(sig, slope));
        }
        let ins = gt.iter().zip(ut).zip(ht);
        for (((&g, &u), &h), (dg, du)) in ins.zip(dgt.iter_mut().zip(dut.iter_mut())) {
            let sig = 1.0 / (1.0 + (-g).exp());
            *du = h * g * sig;
            *dg = h * u * sig * (1.0 + g * (1.0 - sig));
        }
    }
}

/// RMSNorm as Llama computes it, row by row (rows of `w.len()`):
/// `out = x / sqrt(mean(x_row^2) + eps) * w`.
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let h = w.len();
    for (xr, or) in x.chunks_exact(h).zip(out.chunks_exact_mut(h)) {
        let ss: f32 = xr.iter().map(|v| v * v).sum();
        let inv = 1.0 / (ss / h as f32 + eps).sqrt();
        for ((o, &v), &g) in or.iter_mut().zip(xr).zip(w) {
            *o = v * inv * g;
        }
    }
}

/// Rotate-half rotary embedding of one head in place (as Hugging Face
/// Llama): pairs `(x[j], x[j + half])` rotate by the angle whose cos and
/// sin are `cos[j]`, `sin[j]`.
pub fn rope(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    let half = cos.len();
    let (a, b) = x.split_at_mut(half);
    for j in 0..half {
        let (x1, x2) = (a[j], b[j]);
        a[j] = x1 * cos[j] - x2 * sin[j];
        b[j] = x2 * cos[j] + x1 * sin[j];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_rotates_pairs_by_hand() {
        // (1, 0 | 0, 1) with angles (pi/2, 0): (cos, sin) = (0, 1) and (1, 0).
        let mut x = [1.0, 0.0, 0.0, 1.0];
        rope(&mut x, &[0.0, 1.0], &[1.0, 0.0]);
        assert_eq!(x, [0.0, 0.0, 1.0, 1.0]);
    }

    #[test]
    fn rms_norm_by_hand() {
        // Row (3, 4): mean square 12.5, so x / sqrt(12.5) * (1, 2).
        let mut out = [0.0; 2];
        rms_norm(&[3.0, 4.0], &[1.0, 2.0], 0.0, &mut out);
        let r = 12.5f32.sqrt();
        assert!((out[0] - 3.0 / r).abs() < 1e-6 && (out[1] - 8.0 / r).abs() < 1e-6);
    }

    #[test]
    fn vector_exp_within_a_few_ulp() {
        struct E<'a>(&'a mut [f32]);
        impl WithSimd for E<'_> {
            type Output = ();
            fn with_simd<T: Simd>(self, simd: T) {
                let (v, t) = T::as_mut_simd_f32s(self.0);
                assert!(t.is_empty());
                for x in v {
                    *x = exp_nonpositive::<T>(simd, *x);
                }
            }
        }
        let xs: Vec<f32> = (0..8000).map(|i| -(i as f32) * 0.0108).collect();
        let mut ys = xs.clone();
        Arch::new().dispatch(E(&mut ys));
        for (x, y) in xs.iter().zip(&ys) {
            let want = (*x as f64).exp();
            let err = ((*y as f64 - want) / want).abs();
            assert!(
                err < 3e-7,
                "exp({x}) = {y}, want {want}: relative error {err:e}"
            );
        }
        let mut edge = [0.0f32, -0.5, -1e-8, -87.0, -100.0, -1e30, -0.346, -0.347];
        Arch::new().dispatch(E(&mut edge));
        assert_eq!(edge[0], 1.0);
        assert!((edge[1] - (-0.5f32).exp()).abs() < 1e-7);
        assert!(edge[4] > 0.0 && edge[4] < 2e-38 && edge[5] == edge[4]);
    }

    #[test]
    fn silu_by_hand_and_against_the_scalar_form() {
        // silu(0) = 0; silu(2) = 2 / (1 + e^-2) = 1.761594...; silu(-2) = -0.238405...
        let g = [0.0f32, 2.0, -2.0];
        let mut out = [0.0f32; 3];
        silu_mul(&g, &[1.0, 1.0, 3.0], &mut out);
        assert_eq!(out[0], 0.0);
        assert!((out[1] - 1.761_594_2).abs() < 1e-6);
        assert!((out[2] - 3.0 * -0.238_405_84).abs() < 1e-6);
        let g: Vec<f32> = (0..1003).map(|i| (i as f32 - 500.0) * 0.037).collect();
        let u: Vec<f32> = (0..1003).map(|i| 1.0 + (i % 7) as f32 * 0.25).collect();
        let mut out = vec![0.0; g.len()];
        silu_mul(&g, &u, &mut out);
        for ((&g, &u), &o) in g.iter().zip(&u).zip(&out) {
            let want = (g as f64) / (1.0 + (-(g as f64)).exp()) * u as f64;
            assert!(
                (o as f64 - want).abs() <= 1e-6 * want.abs().max(1.0),
                "silu({g}) * {u} = {o}, want {want}"
            );
        }
    }

    #[test]
    fn silu_gradients_by_hand_and_against_differences() {
        // g = 0: s = 1/2, silu = 0, silu' = 1/2: du = 0, dg = dh u / 2.
        let (mut dg, mut du) = ([0.0f32; 1], [0.0f32; 1]);
        silu_mul_backward(&[0.0], &[3.0], &[2.0], &mut dg, &mut du);
        assert_eq!((dg[0], du[0]), (3.0, 0.0));
        // Against central differences of the f64 form, both signs of g,
        // vector lanes and the scalar tail (1003 values).
        let f = |g: f64, u: f64| g / (1.0 + (-g).exp()) * u;
        let g: Vec<f32> = (0..1003).map(|i| (i as f32 - 500.0) * 0.029).collect();
        let u: Vec<f32> = (0..1003).map(|i| 0.5 + (i % 5) as f32 * 0.3).collect();
        let dh: Vec<f32> = (0..1003).map(|i| 1.0 - (i % 3) as f32 * 0.7).collect();
        let (mut dg, mut du) = (vec![0.0; 1003], vec![0.0; 1003]);
        silu_mul_backward(&g, &u, &dh, &mut dg, &mut du);
        for i in 0..1003 {
            let (gi, ui, hi) = (g[i] as f64, u[i] as f64, dh[i] as f64);
            let eps = 1e-5;
            let want_g = hi * (f(gi + eps, ui) - f(gi - eps, ui)) / (2.0 * eps);
            let want_u = hi * f(gi, 1.0);
            assert!(
                (dg[i] as f64 - want_g).abs() < 1e-5 * want_g.abs().max(1.0),
                "dg at {i}"
            );
            assert!(
                (du[i] as f64 - want_u).abs() < 1e-6 * want_u.abs().max(1.0),
                "du at {i}"
            );
        }
    }
}
