//! The KV cache kept in host memory, the CPU's layout of
//! [`crate::KvCache`]: one `[kv_heads, block, width]` array per (layer,
//! row) for keys and one for values, where a row's `block` (its allocated
//! positions) grows by doubling up to the capacity as the row fills, and
//! `width` follows the element type ([`KvElem`]).
//!
//! Memory is committed for the tokens a row has held, not for its
//! capacity (reserving every row's capacity up front would make the kernel
//! zero the whole budget, hundreds of MB, at each rollout's first steps).
//! burn 0.21's `flex` backend copies a whole tensor on every
//! `slice_assign` or `scatter`, so a cache kept as burn tensors would cost
//! a copy of the entire cache per layer per step, and dense
//! `[rows, kv_heads, longest, head_dim]` tensors padded to the longest row
//! would dominate decoding at long contexts.

use crate::error::{Error, Result};
use apr_kernels::attention::CachedRow;

/// How a host cache stores each key and value element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvElem {
    /// f32, as computed.
    F32,
    /// bfloat16, rounded from f32 and packed two per 32-bit word
    /// (`apr_kernels::kv16`): half the memory and half the bytes attention
    /// reads. Needs a head width that is a multiple of
    /// `apr_kernels::kv16::CHUNK`.
    Bf16,
}

impl KvElem {
    /// Checks that heads of `head_dim` values can be stored as this type.
    pub fn check(self, head_dim: usize) -> Result<()> {
        let chunk = apr_kernels::kv16::CHUNK;
        match self {
            KvElem::F32 => Ok(()),
            KvElem::Bf16 if head_dim.is_multiple_of(chunk) => Ok(()),
            KvElem::Bf16 => Err(Error::Input(format!(
                "a bfloat16 cache needs a head width that is a multiple of {chunk}, not {head_dim}"
            ))),
        }
    }

    /// 32-bit words of storage per (position, head) for heads of
    /// `head_dim` values.
    pub fn width(self, head_dim: usize) -> usize {
        match self {
            KvElem::F32 => head_dim,
            KvElem::Bf16 => head_dim / 2,
        }
    }

    /// Writes one head's `src` (its `head_dim` values) at position slot
    /// `at` of a row's keys or values: copied, or rounded and packed.
    #[inline]
    pub(crate) fn store(self, slot: &mut [f32], at: usize, src: &[f32]) {
        let w = self.width(src.len());
        let dst = &mut slot[at * w..(at + 1) * w];
        match self {
            KvElem::F32 => dst.copy_from_slice(src),
            KvElem::Bf16 => apr_kernels::kv16::pack(src, bytemuck::cast_slice_mut(dst)),
        }
    }

    /// The row view the attention kernel reads: `len` valid positions of a
    /// row whose blocks hold `block` positions.
    pub(crate) fn row<'a>(
        self,
        (keys, values): &'a (Vec<f32>, Vec<f32>),
        len: usize,
        block: usize,
    ) -> CachedRow<'a> {
        CachedRow {
            len,
            block,
            keys,
            values,
            bf16: self == KvElem::Bf16,
        }
    }
}

/// Keys and values of every layer for some rows, in host memory.
#[derive(Debug)]
pub(crate) struct HostKv {
    /// `[layer][row]`: keys, then values, each `[kv_heads, block[row],
    /// elem.width(head_dim)]`.
    pub(crate) layers: Vec<Vec<(Vec<f32>, Vec<f32>)>>,
    /// Positions allocated per head block, per row.
    pub(crate) block: Vec<usize>,
    pub(crate) elem: KvElem,
}

impl HostKv {
    /// An empty store of `layers` x `rows` (nothing allocated yet).
    pub(crate) fn new(layers: usize, rows: usize, elem: KvElem) -> Self {
        HostKv {
            layers: (0..layers)
                .map(|_| (0..rows).map(|_| (Vec::new(), Vec::new())).collect())
                .collect(),
            block: vec![0; rows],
            elem,
        }
    }

    /// Bytes the keys and values take now.
    pub(crate) fn committed_bytes(&self) -> usize {
        let words: usize = self
            .layers
            .iter()
            .flatten()
            .map(|(k, v)| k.len() + v.len())
            .sum();
        words * 4
    }

    /// Makes room in every layer for each fed row's new tokens, rows
    /// holding `lens` tokens: a row's block doubles (at least to what it
    /// needs, at most `capacity`) and keeps what the row held.
    pub(crate) fn grow(
        &mut self,
        lens: &[usize],
        feed: &[(usize, &[u32])],
        capacity: usize,
        kv_heads: usize,
        head_dim: usize,
    ) {
        let w = self.elem.width(head_dim);
        for &(r, toks) in feed {
            let (need, old) = (lens[r] + toks.len(), self.block[r]);
            if need <= old {
                continue;
            }
            let new = need.max(2 * old).min(capacity);
            let keep = lens[r] * w;
            for layer in &mut self.layers {
                let (k, v) = &mut layer[r];
                for x in [k, v] {
                    let mut y = vec![0.0; kv_heads * new * w];
                    for g in 0..kv_heads {
                        y[g * new * w..][..keep].copy_from_slice(&x[g * old * w..][..keep]);
                    }
                    *x = y;
                }
            }
            self.block[r] = new;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_store_at_their_width() {
        let src: Vec<f32> = (0..32).map(|i| i as f32 * 0.5).collect();
        let mut f = vec![0.0f32; 3 * 32];
        KvElem::F32.store(&mut f, 1, &src);
        assert_eq!(&f[32..64], &src[..]);
        assert!(f[..32].iter().chain(&f[64..]).all(|&x| x == 0.0));
        // Halves of 0.5 are exact in bfloat16: packed and read back whole.
        let mut b = vec![0.0f32; 3 * 16];
        KvElem::Bf16.store(&mut b, 2, &src);
        assert!(b[..32].iter().all(|&x| x == 0.0));
        let mut back = vec![0.0f32; 32];
        apr_kernels::kv16::unpack(bytemuck::cast_slice(&b[32..]), &mut back);
        assert_eq!(back, src);
        assert_eq!((KvElem::F32.width(64), KvElem::Bf16.width(64)), (64, 32));
        assert!(KvElem::Bf16.check(32).is_ok() && KvElem::Bf16.check(40).is_err());
        assert!(KvElem::F32.check(40).is_ok());
    }

    /// Growing a row doubles its block, up to the capacity, keeps each
    /// head's held positions where the new block puts them, and leaves
    /// other rows alone.
    #[test]
    fn growing_keeps_each_heads_positions() {
        for elem in [KvElem::F32, KvElem::Bf16] {
            let (kvh, hd) = (2, 32);
            let w = elem.width(hd);
            let mut kv = HostKv::new(1, 2, elem);
            kv.grow(&[0, 0], &[(1, &[1, 2, 3])], 20, kvh, hd);
            assert_eq!(kv.block, [0, 3]);
            let fill = |x: &mut Vec<f32>| {
                for (i, v) in x.iter_mut().enumerate() {
                    *v = i as f32 + 1.0;
                }
            };
            let (k, v) = &mut kv.layers[0][1];
            fill(k);
            fill(v);
            kv.grow(&[0, 3], &[(1, &[4])], 20, kvh, hd);
            assert_eq!(kv.block, [0, 6]);
            for x in [&kv.layers[0][1].0, &kv.layers[0][1].1] {
                assert_eq!(x.len(), kvh * 6 * w);
                for g in 0..kvh {
                    let head = &x[g * 6 * w..(g + 1) * 6 * w];
                    let held: Vec<f32> = (0..3 * w).map(|i| (g * 3 * w + i) as f32 + 1.0).collect();
                    assert_eq!(&head[..3 * w], &held[..]);
                    assert!(head[3 * w..].iter().all(|&x| x == 0.0));
                }
            }
            // Past the capacity: only up to it.
            kv.grow(&[0, 6], &[(1, &[0; 10])], 14, kvh, hd);
            assert_eq!(kv.block, [0, 14]);
            assert!(kv.layers[0][0].0.is_empty());
            assert_eq!(kv.committed_bytes(), 2 * kvh * 14 * w * 4);
        }
    }
}
