//! Matrix products for the host decoder (`out[m, n] = x[m, k] · w[k, n]`,
//! optionally added to `out`), all row-major f32, with the CPU's vector
//! instructions picked at run time through `pulp` (no `unsafe` here).
//!
//! Every output element is one fused multiply-add chain over `k` in order,
//! started at zero, whatever tile, thread or batch computes it: a row's
//! result does not depend on which other rows share the product (batched
//! decoding gives the same bits as decoding one row at a time).
//!
//! Layout: the weight is packed once into strips of `WIDTH` columns; each
//! call copies its rows of `x` into tiles of up to `ROWS` rows interleaved
//! along `k` (the kernel's broadcasts then read one stream instead of one
//! per row). Threads split a product with few rows by columns (whole
//! strips) and one with many rows by rows (whole tiles).

use pulp::{Arch, Simd, WithSimd};
use rayon::prelude::*;

/// Rows per register tile.
pub const ROWS: usize = 6;
/// Columns per strip of a packed matrix (two vectors of 8 lanes).
pub const WIDTH: usize = 16;
/// Vectors per register tile where the machine has 8 lanes.
pub const VECS: usize = 2;
/// Below this many multiply-adds a product stays on one thread.
const PARALLEL_WORK: usize = 1 << 18;

/// A `[k, n]` row-major matrix laid out for [`matmul`]: strips of
/// `WIDTH` columns, each `[k, WIDTH]` and contiguous (the kernel walks
/// them in order), then the last `n % WIDTH` columns one after another
/// (`[n % WIDTH, k]`).
#[derive(Debug, Clone)]
pub struct Packed {
    k: usize,
    n: usize,
    strips: Vec<f32>,
    tail: Vec<f32>,
}

impl Packed {
    /// Packs `w` (`[k, n]`, row-major).
    ///
    /// # Panics
    /// When `w` is not `k * n` long (a bug in the caller).
    pub fn new(w: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(w.len(), k * n);
        let full = n / WIDTH * WIDTH;
        let mut strips = Vec::with_capacity(k * full);
        for j in (0..full).step_by(WIDTH) {
            for kk in 0..k {
                strips.extend_from_slice(&w[kk * n + j..kk * n + j + WIDTH]);
            }
        }
        let tail = (full..n)
            .flat_map(|j| (0..k).map(move |kk| w[kk * n + j]))
            .collect();
        Packed { k, n, strips, tail }
    }
}

/// `out = x · w` (or `out += x · w` with `add`), `x` `[m, k]`, `out`
/// `[m, n]`. Splits the work over rayon's threads when the product is
/// large enough: by columns when `m` is small, by rows otherwise.
///
/// With a few rows (decoding one sequence) the product is bound by reading
/// the weight from memory; split by columns, each thread streams its own
/// part of it (split by rows, every thread would stream all of it). With
/// many rows the weight is reused from cache by every tile and rows split
/// evenly.
///
/// # Panics
/// When a slice is shorter than its shape (a bug in the caller).
pub fn matmul(x: &[f32], m: usize, w: &Packed, out: &mut [f32], add: bool) {
    let (k, n) = (w.k, w.n);
    assert!(x.len() >= m * k && out.len() >= m * n);
    let (x, out) = (&x[..m * k], &mut out[..m * n]);
    let strips = n / WIDTH;
    let threads = rayon::current_num_threads();
    let large = threads > 1 && m * k * n >= PARALLEL_WORK;
    let rows: Vec<&mut [f32]> = out.chunks_exact_mut(n.max(1)).collect();
    // Each part: its rows of `x` and of `out`, its strips, and whether it
    // also computes the columns past the last strip.
    let mut parts = Vec::with_capacity(threads);
    if large && m >= 2 * ROWS {
        // Whole tiles for each thread, the last one also taking the rows
        // left over (a partial tile costs less than a whole one).
        let per = (m / ROWS / threads).max(1) * ROWS;
        let (mut x, mut rows) = (x, rows);
        while parts.len() + 1 < threads && rows.len() > per {
            let rest = rows.split_off(per);
            let (xa, xb) = x.split_at(per * k);
            parts.push((xa, rows, 0..strips, true));
            (x, rows) = (xb, rest);
        }
        parts.push((x, rows, 0..strips, true));
    } else {
        let n_parts = if large { threads.min(strips).max(1) } else { 1 };
        // Part p computes strips bounds[p]..bounds[p + 1]; the last part
        // also computes the columns past the last strip.
        let bounds: Vec<usize> = (0..=n_parts).map(|p| p * strips / n_parts).collect();
        let mut pieces: Vec<Vec<&mut [f32]>> =
            (0..n_parts).map(|_| Vec::with_capacity(m)).collect();
        for row in rows {
            let mut rest = row;
            for (p, rows) in pieces.iter_mut().enumerate() {
                let width = if p + 1 == n_parts {
                    rest.len()
                } else {
                    (bounds[p + 1] - bounds[p]) * WIDTH
                };
                let (a, b) = rest.split_at_mut(width);
                rows.push(a);
                rest = b;
            }
        }
        for (p, rows) in pieces.into_iter().enumerate() {
            parts.push((x, rows, bounds[p]..bounds[p + 1], p + 1 == n_parts));
        }
    }
    let run = |(x, mut out, strips, tail): (&[f32], Vec<&mut [f32]>, _, bool)| {
        Arch::new().dispatch(Kernel {
            x,
            w,
            strips,
            tail,
            out: &mut out,
            add,
        });
    };
    if parts.len() > 1 {
        parts.into_par_iter().for_each(run);
    } else {
        parts.into_iter().for_each(run);
    }
}

thread_local! {
    /// Each thread's copy of its row tiles ([`interleave`]), kept between
    /// calls.
    static PACKED_X: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One thread's share of a product: strips `strips` of `w` (and the
/// columns past the last strip when `tail`) for the rows of `out`, whose
/// `x` rows are `x`. `out[r]` is row `r`'s part of the output, starting at
/// column `strips.start * WIDTH`.
struct Kernel<'a, 'o> {
    x: &'a [f32],
    w: &'a Packed,
    strips: std::ops::Range<usize>,
    tail: bool,
    out: &'a mut [&'o mut [f32]],
    add: bool,
}

impl WithSimd for Kernel<'_, '_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Kernel {
            x,
            w,
            strips,
            tail,
            out,
            add,
        } = self;
        let (k, m) = (w.k, out.len());
        let s0 = strips.start;
        let vector_tiles = S::F32_LANES * VECS == WIDTH;
        // Taken out of the thread-local and put back (no closure: a closure
        // would not inherit the kernel's target features).
        let mut xp = PACKED_X.take();
        if vector_tiles {
            interleave(x, k, &mut xp);
        }
        let whole = m / ROWS * ROWS;
        let mine = &w.strips[s0 * k * WIDTH..strips.end * k * WIDTH];
        for (si, strip) in mine.chunks_exact(k * WIDTH).enumerate() {
            let j = si * WIDTH;
            if vector_tiles {
                let (tiles, rest) = xp.split_at(whole * k);
                for (t, xt) in tiles.chunks_exact(ROWS * k).enumerate() {
                    tile::<S, ROWS>(simd, xt, &mut out[t * ROWS..], strip, j, add);
                }
                let rows = &mut out[whole..];
                match m - whole {
                    0 => {}
                    1 => tile::<S, 1>(simd, rest, rows, strip, j, add),
                    2 => tile::<S, 2>(simd, rest, rows, strip, j, add),
                    3 => tile::<S, 3>(simd, rest, rows, strip, j, add),
                    4 => tile::<S, 4>(simd, rest, rows, strip, j, add),
                    _ => tile::<S, 5>(simd, rest, rows, strip, j, add),
                }
            } else {
                for (r, o) in out.iter_mut().enumerate() {
                    let mut acc = [0.0f32; WIDTH];
                    for (kk, &xv) in x[r * k..(r + 1) * k].iter().enumerate() {
                        for (a, &wv) in acc.iter_mut().zip(&strip[kk * WIDTH..(kk + 1) * WIDTH]) {
                            *a = xv.mul_add(wv, *a);
                        }
                    }
                    for (o, a) in o[j..j + WIDTH].iter_mut().zip(acc) {
                        *o = if add { *o + a } else { a };
                    }
                }
            }
        }
        if tail {
            let first = (strips.end - s0) * WIDTH;
            for (t, col) in w.tail.chunks_exact(k).enumerate() {
                for (r, o) in out.iter_mut().enumerate() {
                    let mut s = 0.0f32;
                    for (&xv, &wv) in x[r * k..(r + 1) * k].iter().zip(col) {
                        s = xv.mul_add(wv, s);
                    }
                    let o = &mut o[first + t];
                    *o = if add { *o + s } else { s };
                }
            }
        }
        PACKED_X.set(xp);
    }
}

/// Copies the rows of `x` (`[m, k]`) into `xp` in tiles of `ROWS` rows
/// (the last one holding the rows left over), each interleaved along `k`
/// (`[k, rows]`), so a tile's broadcasts read one stream.
fn interleave(x: &[f32], k: usize, xp: &mut Vec<f32>) {
    xp.clear();
    xp.resize(x.len(), 0.0);
    for (xs, xp) in x.chunks(ROWS * k).zip(xp.chunks_mut(ROWS * k)) {
        let rows = xs.len() / k;
        for (kk, xp) in xp.chunks_exact_mut(rows).enumerate() {
            for (i, v) in xp.iter_mut().enumerate() {
                *v = xs[i * k + kk];
            }
        }
    }
}

/// Columns `j..j + WIDTH` of `out` (one strip of the weight, `[k, WIDTH]`)
/// for its first `R` rows, whose `x` values are interleaved (`xt`,
/// `[k, R]`).
#[inline(always)]
fn tile<S: Simd, const R: usize>(
    simd: S,
    xt: &[f32],
    out: &mut [&mut [f32]],
    strip: &[f32],
    j: usize,
    add: bool,
) {
    let zero = simd.splat_f32s(0.0);
    let mut acc = [[zero; VECS]; R];
    for (row, xs) in strip.chunks_exact(WIDTH).zip(xt.chunks_exact(R)) {
        let (wv, _) = S::as_simd_f32s(row);
        for (a, &xv) in acc.iter_mut().zip(xs) {
            let s = simd.splat_f32s(xv);
            for (a, &wv) in a.iter_mut().zip(wv) {
                *a = simd.mul_add_f32s(s, wv, *a);
            }
        }
    }
    for (a, o) in acc.iter().zip(out.iter_mut()) {
        let (ov, _) = S::as_mut_simd_f32s(&mut o[j..j + WIDTH]);
        for (o, &a) in ov.iter_mut().zip(a) {
            *o = if add { simd.add_f32s(*o, a) } else { a };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The same fused chain, one element at a time.
    fn naive(x: &[f32], m: usize, k: usize, w: &[f32], n: usize) -> Vec<f32> {
        let mut out = vec![0.0; m * n];
        for r in 0..m {
            for j in 0..n {
                let mut s = 0.0f32;
                for kk in 0..k {
                    s = x[r * k + kk].mul_add(w[kk * n + j], s);
                }
                out[r * n + j] = s;
            }
        }
        out
    }

    #[test]
    fn two_by_two_by_hand() {
        // [1 2; 3 4] · [5 6; 7 8] = [19 22; 43 50]
        let mut out = vec![1.0; 4];
        let w = Packed::new(&[5., 6., 7., 8.], 2, 2);
        matmul(&[1., 2., 3., 4.], 2, &w, &mut out, false);
        assert_eq!(out, [19., 22., 43., 50.]);
        matmul(&[1., 2., 3., 4.], 2, &w, &mut out, true);
        assert_eq!(out, [38., 44., 86., 100.]);
    }

    #[test]
    fn large_products_split_over_threads_give_the_same_bits() {
        // 37 rows split by rows; 3 rows of a 4x larger `k` split by
        // columns (22 strips and one column past them).
        for (m, k, n) in [(37, 128, 353), (3, 512, 353)] {
            split_product_matches(m, k, n);
        }
    }

    fn split_product_matches(m: usize, k: usize, n: usize) {
        assert!(m * k * n >= PARALLEL_WORK);
        let x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0)
            .collect();
        let w: Vec<f32> = (0..k * n)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) / 3.0)
            .collect();
        let mut out = vec![0.0; m * n];
        matmul(&x, m, &Packed::new(&w, k, n), &mut out, false);
        assert_eq!(out, naive(&x, m, k, &w, n));
        // The last row alone gives the same bits as in the batch.
        let mut one = vec![0.0; n];
        let r = m - 1;
        matmul(
            &x[r * k..(r + 1) * k],
            1,
            &Packed::new(&w, k, n),
            &mut one,
            false,
        );
        assert_eq!(one, out[r * n..(r + 1) * n]);
    }

    proptest! {
        #[test]
        fn equals_the_naive_product(m in 1usize..20, k in 1usize..40, n in 1usize..70, seed in 0u64..1000) {
            let val = |i: usize| (((i as u64 * 2654435761 + seed) % 1000) as f32 - 500.0) / 250.0;
            let x: Vec<f32> = (0..m * k).map(val).collect();
            let w: Vec<f32> = (0..k * n).map(|i| val(i + 7)).collect();
            let mut out = vec![f32::NAN; m * n];
            matmul(&x, m, &Packed::new(&w, k, n), &mut out, false);
            prop_assert_eq!(out, naive(&x, m, k, &w, n));
        }
    }
}
