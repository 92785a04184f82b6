//! Attention of a row's new queries over its keys and values in the
//! host-memory KV cache: each query reads only its own row's valid prefix
//! (no padding to the batch's longest row, no dense copy of the cache).

/// The shapes of one step.
pub(crate) struct HostShape {
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (grouped-query attention when fewer).
    pub kv_heads: usize,
    /// Width of a head.
    pub head_dim: usize,
    /// Query positions per row in this step (rows with fewer are padded).
    pub t: usize,
    /// Positions per (head, row) block of the cache.
    pub capacity: usize,
}

/// Dot product with eight independent accumulators (vectorises).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// Causal attention of one row. `q` is `[heads, t, hd]`; its first `n`
/// query positions are real, at absolute positions `len..len + n`, and see
/// keys `0..=position`. `keys`/`values` are `[kv_heads, capacity, hd]`
/// with the new tokens already written. Writes `out` `[heads, t, hd]`
/// (padding positions stay zero).
pub(crate) fn attend_row(
    s: &HostShape,
    q: &[f32],
    n: usize,
    len: usize,
    keys: &[f32],
    values: &[f32],
    out: &mut [f32],
) {
    let hd = s.head_dim;
    let group = s.heads / s.kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    let mut p = vec![0.0f32; len + n];
    for h in 0..s.heads {
        let g = h / group;
        let kb = &keys[g * s.capacity * hd..];
        let vb = &values[g * s.capacity * hd..];
        for i in 0..n {
            let qi = &q[(h * s.t + i) * hd..][..hd];
            let l = len + i + 1;
            let mut max = f32::NEG_INFINITY;
            for (j, pj) in p[..l].iter_mut().enumerate() {
                *pj = dot(qi, &kb[j * hd..][..hd]) * scale;
                max = max.max(*pj);
            }
            let mut sum = 0.0f32;
            for pj in &mut p[..l] {
                *pj = (*pj - max).exp();
                sum += *pj;
            }
            let o = &mut out[(h * s.t + i) * hd..][..hd];
            let inv = 1.0 / sum;
            for (j, pj) in p[..l].iter().enumerate() {
                let w = pj * inv;
                for (od, vd) in o.iter_mut().zip(&vb[j * hd..][..hd]) {
                    *od += w * vd;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_head_by_hand() {
        // hd 2, one head; cached key 0 = (1, 0), new key 1 = (0, 1);
        // values (1, 2) and (3, 4). Query (ln 2 * sqrt 2, 0) at position 1
        // scores ln 2 and 0: weights 2/3 and 1/3.
        let s = HostShape {
            heads: 1,
            kv_heads: 1,
            head_dim: 2,
            t: 1,
            capacity: 4,
        };
        let q = [std::f32::consts::LN_2 * 2f32.sqrt(), 0.0];
        let keys = [1.0, 0.0, 0.0, 1.0, 9.0, 9.0, 9.0, 9.0];
        let values = [1.0, 2.0, 3.0, 4.0, 9.0, 9.0, 9.0, 9.0];
        let mut out = [0.0; 2];
        attend_row(&s, &q, 1, 1, &keys, &values, &mut out);
        let want = [2.0 / 3.0 + 1.0, 4.0 / 3.0 + 4.0 / 3.0];
        assert!(
            (out[0] - want[0]).abs() < 1e-6 && (out[1] - want[1]).abs() < 1e-6,
            "{out:?}"
        );
        // The first of two new tokens sees only key 0: the value itself.
        let s2 = HostShape { t: 2, ..s };
        let q2 = [0.3, 0.1, 0.0, 0.0];
        let mut out2 = [0.0; 4];
        attend_row(&s2, &q2, 2, 0, &keys, &values, &mut out2);
        assert_eq!(&out2[..2], &[1.0, 2.0]);
        assert_eq!(&out2[2..], &[2.0, 3.0]);
        assert!((dot(&[1.0; 11], &[2.0; 11]) - 22.0).abs() < 1e-6);
    }
}
