//! The decoder's architecture as every executor reads it: the sizes, and
//! the constants of its RMSNorm and rotary embedding. The burn forward in
//! `apr-model` and the host [`crate::decoder::Decoder`] are both built from
//! a [`LlamaArch`], so the two compute the same function from one
//! description.

/// A Llama-style decoder: pre-norm blocks of grouped-query attention with
/// rotate-half rotary embeddings and a SwiGLU MLP, RMSNorm, optionally an
/// output projection tied to the embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaArch {
    /// Vocabulary size.
    pub vocab: usize,
    /// Width of the residual stream.
    pub hidden: usize,
    /// Width of the MLP.
    pub intermediate: usize,
    /// Decoder blocks.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (fewer than `heads`: grouped-query attention).
    pub kv_heads: usize,
    /// Longest sequence (the rotary table's length).
    pub max_seq_len: usize,
    /// Rotary base.
    pub rope_theta: f64,
    /// RMSNorm's epsilon.
    pub rms_norm_eps: f64,
    /// Whether the output projection is the embedding transposed.
    pub tied: bool,
}

impl LlamaArch {
    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }

    /// Rotary inverse frequencies `1 / theta^(2j / head_dim)` for
    /// `j < head_dim / 2`, computed in f64 and kept in f32 as Hugging Face
    /// does.
    pub fn rope_inv_freq(&self) -> Vec<f32> {
        let hd = self.head_dim();
        (0..hd / 2)
            .map(|j| (1.0 / self.rope_theta.powf(2.0 * j as f64 / hd as f64)) as f32)
            .collect()
    }

    /// cos and sin of position `p`'s rotary angles, one per frequency:
    /// the angle `(p as f32) * inv[j]` in f32, as Hugging Face.
    pub fn rope_angles(inv_freq: &[f32], p: usize, cos: &mut [f32], sin: &mut [f32]) {
        for ((c, s), f) in cos.iter_mut().zip(sin.iter_mut()).zip(inv_freq) {
            let a = (p as f32) * f;
            (*c, *s) = (a.cos(), a.sin());
        }
    }

    /// The rotary tables of positions `0..max_seq_len`, `[max_seq_len,
    /// head_dim / 2]` each (cos, sin).
    pub fn rope_tables(&self) -> (Vec<f32>, Vec<f32>) {
        let inv = self.rope_inv_freq();
        let n = self.max_seq_len * inv.len();
        let (mut cos, mut sin) = (vec![0.0; n], vec![0.0; n]);
        if !inv.is_empty() {
            for (p, (c, s)) in cos
                .chunks_exact_mut(inv.len())
                .zip(sin.chunks_exact_mut(inv.len()))
                .enumerate()
            {
                Self::rope_angles(&inv, p, c, s);
            }
        }
        (cos, sin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arch() -> LlamaArch {
        LlamaArch {
            vocab: 10,
            hidden: 8,
            intermediate: 12,
            layers: 1,
            heads: 2,
            kv_heads: 1,
            max_seq_len: 3,
            rope_theta: 100.0,
            rms_norm_eps: 1e-6,
            tied: true,
        }
    }

    /// head_dim 4, theta 100: frequencies 1 and 100^-1/2 = 0.1; position
    /// 2's angles are 2 and 0.2.
    #[test]
    fn rotary_frequencies_and_tables_by_hand() {
        let a = arch();
        assert_eq!(a.head_dim(), 4);
        assert_eq!(a.rope_inv_freq(), [1.0, 0.1]);
        let (cos, sin) = a.rope_tables();
        assert_eq!(cos.len(), 6);
        assert_eq!(&cos[..2], &[1.0, 1.0]);
        assert_eq!(&sin[..2], &[0.0, 0.0]);
        assert_eq!(&cos[4..], &[2f32.cos(), (2f32 * 0.1).cos()]);
        assert_eq!(&sin[4..], &[2f32.sin(), (2f32 * 0.1).sin()]);
    }
}
