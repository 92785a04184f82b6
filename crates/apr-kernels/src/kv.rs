//! The KV cache kept in host memory: one `[kv_heads, block, width]` array
//! per (layer, row) for keys and one for values, where a row's `block`
//! (its allocated positions) grows by doubling up to the capacity as the
//! row fills, and `width` follows the element type ([`KvElem`]).
//!
//! Memory is committed for the tokens a row has held, not for its
//! capacity: reserving every row's capacity up front would make the kernel
//! zero the whole budget, hundreds of MB, at each rollout's first steps.
//! The row lengths and the capacity belong to the caller (`apr-model`'s
//! `KvCache`, which also has a device layout); [`check_feed`] checks a
//! step against them.

use crate::attention::CachedRow;
use crate::error::{Error, Result};
use crate::kv16;

/// How a host cache stores each key and value element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvElem {
    /// f32, as computed.
    F32,
    /// bfloat16, rounded from f32 and packed two per 32-bit word
    /// ([`crate::kv16`]): half the memory and half the bytes attention
    /// reads. Needs a head width that is a multiple of [`kv16::CHUNK`].
    Bf16,
}

impl KvElem {
    /// Checks that heads of `head_dim` values can be stored as this type.
    pub fn check(self, head_dim: usize) -> Result<()> {
        let chunk = kv16::CHUNK;
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
    fn store(self, slot: &mut [f32], at: usize, src: &[f32]) {
        let w = self.width(src.len());
        let dst = &mut slot[at * w..(at + 1) * w];
        match self {
            KvElem::F32 => dst.copy_from_slice(src),
            KvElem::Bf16 => kv16::pack(src, bytemuck::cast_slice_mut(dst)),
        }
    }
}

/// Keys and values of every layer for some rows, in host memory.
#[derive(Debug)]
pub struct HostKv {
    /// `[layer][row]`: keys, then values, each `[kv_heads, block[row],
    /// elem.width(head_dim)]`.
    layers: Vec<Vec<(Vec<f32>, Vec<f32>)>>,
    /// Positions allocated per head block, per row.
    block: Vec<usize>,
    elem: KvElem,
    kv_heads: usize,
    head_dim: usize,
}

impl HostKv {
    /// An empty store of `layers` x `rows` for heads of `kv_heads` x
    /// `head_dim` (nothing allocated yet); an error where `elem` cannot
    /// hold such heads ([`KvElem::check`]).
    pub fn new(
        layers: usize,
        rows: usize,
        kv_heads: usize,
        head_dim: usize,
        elem: KvElem,
    ) -> Result<Self> {
        elem.check(head_dim)?;
        Ok(HostKv {
            elem,
            ..Self::f32(layers, rows, kv_heads, head_dim)
        })
    }

    /// An empty f32 store (f32 holds heads of any width).
    pub fn f32(layers: usize, rows: usize, kv_heads: usize, head_dim: usize) -> Self {
        HostKv {
            layers: (0..layers)
                .map(|_| (0..rows).map(|_| (Vec::new(), Vec::new())).collect())
                .collect(),
            block: vec![0; rows],
            elem: KvElem::F32,
            kv_heads,
            head_dim,
        }
    }

    /// How elements are stored.
    pub fn elem(&self) -> KvElem {
        self.elem
    }

    /// Layers, key/value heads and head width, as built.
    pub fn shape(&self) -> (usize, usize, usize) {
        (self.layers.len(), self.kv_heads, self.head_dim)
    }

    /// Bytes the keys and values take now.
    pub fn committed_bytes(&self) -> usize {
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
    pub fn grow(&mut self, lens: &[usize], feed: &[(usize, &[u32])], capacity: usize) {
        let (w, kv_heads) = (self.elem.width(self.head_dim), self.kv_heads);
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

    /// Writes key/value head `head`'s `key` and `value` at position `pos`
    /// of `row` in `layer` (within the row's block: after [`Self::grow`]).
    #[inline]
    pub fn store(
        &mut self,
        layer: usize,
        row: usize,
        head: usize,
        pos: usize,
        key: &[f32],
        value: &[f32],
    ) {
        let at = head * self.block[row] + pos;
        let (ks, vs) = &mut self.layers[layer][row];
        self.elem.store(ks, at, key);
        self.elem.store(vs, at, value);
    }

    /// The view the attention kernel reads of `row` in `layer`, holding
    /// `len` valid positions.
    #[inline]
    pub fn row(&self, layer: usize, row: usize, len: usize) -> CachedRow<'_> {
        let (keys, values) = &self.layers[layer][row];
        CachedRow {
            len,
            block: self.block[row],
            keys,
            values,
            bf16: self.elem == KvElem::Bf16,
        }
    }
}

/// Checks a step's `(row, new tokens)` pairs against rows holding `lens`
/// tokens of at most `capacity`: at least one pair, rows distinct and in
/// range, tokens not empty, within the capacity and below `vocab`.
pub fn check_feed(
    lens: &[usize],
    capacity: usize,
    vocab: usize,
    feed: &[(usize, &[u32])],
) -> Result<()> {
    if feed.is_empty() || feed.iter().any(|r| r.1.is_empty()) {
        return Err(Error::Input("a fed row has no new tokens".into()));
    }
    let mut seen = vec![false; lens.len()];
    for &(r, toks) in feed {
        if r >= lens.len() || std::mem::replace(&mut seen[r], true) {
            return Err(Error::Input(format!(
                "row {r} missing or repeated (cache of {})",
                lens.len()
            )));
        }
        if lens[r] + toks.len() > capacity {
            return Err(Error::Input(format!(
                "row {r}: {} + {} tokens exceed the cache capacity {capacity}",
                lens[r],
                toks.len(),
            )));
        }
        if let Some(&bad) = toks.iter().find(|&&x| x as usize >= vocab) {
            return Err(Error::Input(format!(
                "token id {bad} outside the vocabulary"
            )));
        }
    }
    Ok(())
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
        kv16::unpack(bytemuck::cast_slice(&b[32..]), &mut back);
        assert_eq!(back, src);
        assert_eq!((KvElem::F32.width(64), KvElem::Bf16.width(64)), (64, 32));
        assert!(KvElem::Bf16.check(32).is_ok() && KvElem::Bf16.check(40).is_err());
        assert!(KvElem::F32.check(40).is_ok());
        assert!(HostKv::new(1, 1, 1, 40, KvElem::Bf16).is_err());
    }

    /// Growing a row doubles its block, up to the capacity, keeps each
    /// head's held positions where the new block puts them, and leaves
    /// other rows alone; a stored head lands at its position.
    #[test]
    fn growing_keeps_each_heads_positions() {
        for elem in [KvElem::F32, KvElem::Bf16] {
            let (kvh, hd) = (2, 32);
            let w = elem.width(hd);
            let mut kv = HostKv::new(1, 2, kvh, hd, elem).unwrap();
            kv.grow(&[0, 0], &[(1, &[1, 2, 3])], 20);
            assert_eq!(kv.block, [0, 3]);
            let fill = |x: &mut Vec<f32>| {
                for (i, v) in x.iter_mut().enumerate() {
                    *v = i as f32 + 1.0;
                }
            };
            let (k, v) = &mut kv.layers[0][1];
            fill(k);
            fill(v);
            kv.grow(&[0, 3], &[(1, &[4])], 20);
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
            // Head 1, position 3 of a block of 6: words (6 + 3) w onwards.
            let (key, value) = (vec![0.5f32; hd], vec![-2.0f32; hd]);
            kv.store(0, 1, 1, 3, &key, &value);
            let row = kv.row(0, 1, 4);
            assert_eq!((row.len, row.block, row.bf16), (4, 6, elem == KvElem::Bf16));
            let mut back = vec![0.0f32; hd];
            for (words, want) in [(row.keys, 0.5), (row.values, -2.0)] {
                let at = &words[9 * w..10 * w];
                match elem {
                    KvElem::F32 => back.copy_from_slice(at),
                    KvElem::Bf16 => kv16::unpack(bytemuck::cast_slice(at), &mut back),
                }
                assert!(back.iter().all(|&x| x == want));
            }
            // Past the capacity: only up to it.
            kv.grow(&[0, 6], &[(1, &[0; 10])], 14);
            assert_eq!(kv.block, [0, 14]);
            assert!(kv.layers[0][0].0.is_empty());
            assert_eq!(kv.committed_bytes(), 2 * kvh * 14 * w * 4);
        }
    }

    #[test]
    fn bad_feeds_are_errors() {
        let lens = [0, 3];
        let ok: &[(usize, &[u32])] = &[(1, &[1, 2]), (0, &[9])];
        assert!(check_feed(&lens, 5, 10, ok).is_ok());
        let bad: [&[(usize, &[u32])]; 6] = [
            &[],
            &[(0, &[])],
            &[(2, &[1])],
            &[(0, &[1]), (0, &[2])],
            &[(1, &[1, 2, 3])],
            &[(0, &[10])],
        ];
        for feed in bad {
            assert!(check_feed(&lens, 5, 10, feed).is_err(), "{feed:?}");
        }
    }
}
