//! The shape of a host causal-attention call ([`CausalShape`]: blocks,
//! positions, head width, layout) and the rows of one block ([`Rows`]),
//! shared by the pairwise and the register-tiled passes.

/// The shape of one call: `blocks` (batch x heads) blocks of `t` positions
/// of width `d`, and where each block's rows lie.
#[derive(Clone, Copy, Debug)]
pub struct CausalShape {
    /// Batch x heads.
    pub blocks: usize,
    /// Positions.
    pub t: usize,
    /// Head width.
    pub d: usize,
    /// Heads.
    pub heads: usize,
    /// `[batch, t, heads, d]` (the projections' layout: a block's rows are
    /// `heads * d` apart) rather than `[batch, heads, t, d]` (a block's
    /// rows contiguous).
    pub token_major: bool,
}

impl CausalShape {
    /// The shape of `[batch, heads, t, head_dim]` tensors.
    pub fn of(dims: [usize; 4]) -> Self {
        let [b, h, t, d] = dims;
        CausalShape {
            blocks: b * h,
            t,
            d,
            heads: h,
            token_major: false,
        }
    }

    /// The shape of `[batch, t, heads, head_dim]` tensors.
    pub fn token_major(dims: [usize; 4]) -> Self {
        let [b, t, h, d] = dims;
        CausalShape {
            token_major: true,
            ..Self::of([b, h, t, d])
        }
    }

    /// The attention scale, `1/sqrt(d)`.
    pub fn scale(&self) -> f32 {
        1.0 / (self.d as f32).sqrt()
    }

    /// Panics unless every slice holds the shape's `blocks * t * d` values.
    pub fn check(&self, xs: &[&[f32]]) {
        let n = self.blocks * self.t * self.d;
        assert!(
            xs.iter().all(|x| x.len() == n),
            "slices of the wrong length"
        );
    }

    /// Distance between a block's consecutive rows.
    pub fn stride(&self) -> usize {
        if self.token_major {
            self.heads * self.d
        } else {
            self.d
        }
    }

    /// The rows of block `blk` (`batch * heads + head`) of `x`.
    pub fn rows<'a>(&self, x: &'a [f32], blk: usize) -> Rows<'a> {
        let base = if self.token_major {
            let (b, h) = (blk / self.heads, blk % self.heads);
            (b * self.t * self.heads + h) * self.d
        } else {
            blk * self.t * self.d
        };
        Rows {
            x: &x[base..],
            stride: self.stride(),
            d: self.d,
        }
    }

    /// The rows of `x`, block by block (`[blocks][t]`).
    pub fn split_rows<'a>(&self, x: &'a mut [f32]) -> Vec<Vec<&'a mut [f32]>> {
        let mut out: Vec<Vec<&mut [f32]>> = (0..self.blocks)
            .map(|_| Vec::with_capacity(self.t))
            .collect();
        let (t, h) = (self.t, self.heads);
        for (r, row) in x.chunks_exact_mut(self.d).enumerate() {
            let blk = if self.token_major {
                r / (t * h) * h + r % h
            } else {
                r / t
            };
            out[blk].push(row);
        }
        out
    }

    /// The same blocks, each contiguous.
    pub fn head_major(&self) -> Self {
        CausalShape {
            token_major: false,
            ..*self
        }
    }

    /// `x` reordered from this layout to [`head_major`](Self::head_major)'s
    /// (`back`: the other way).
    pub fn reorder(&self, x: &[f32], back: bool) -> Vec<f32> {
        let (t, d) = (self.t, self.d);
        let mut out = vec![0.0; x.len()];
        if back {
            for (blk, rows) in self.split_rows(&mut out).into_iter().enumerate() {
                for (i, row) in rows.into_iter().enumerate() {
                    let at = (blk * t + i) * d;
                    row.copy_from_slice(&x[at..at + d]);
                }
            }
        } else {
            for (r, row) in out.chunks_exact_mut(d).enumerate() {
                row.copy_from_slice(self.rows(x, r / t).row(r % t));
            }
        }
        out
    }
}

/// The rows of one block: row `i` is `x[i * stride..][..d]`.
#[derive(Clone, Copy, Debug)]
pub struct Rows<'a> {
    /// From the block's first row on.
    pub x: &'a [f32],
    /// Distance between rows.
    pub stride: usize,
    /// Row width.
    pub d: usize,
}

impl<'a> Rows<'a> {
    /// Row `i`.
    #[inline(always)]
    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.x[i * self.stride..][..self.d]
    }
}
