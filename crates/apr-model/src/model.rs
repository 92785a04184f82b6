//! The Llama-style decoder: RMSNorm, rotary embeddings (rotate-half),
//! grouped-query attention, SwiGLU MLP, optionally tied embeddings.
//!
//! Linear weights are stored `[in, out]` (so that a layer is `x.matmul(w)`);
//! checkpoints transpose them to the Hugging Face `[out, in]` layout.

use crate::backend::AprBackend;
use crate::config::ModelConfig;
use crate::init::SplitMix;
use apr_kernels::LlamaArch;
use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Int, Tensor, TensorData, TensorPrimitive};

/// Standard deviation of the initial weights (Hugging Face's `initializer_range`).
pub const INIT_STD: f64 = 0.02;

/// One decoder block.
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    /// RMSNorm weight before attention.
    pub attn_norm: Param<Tensor<B, 1>>,
    /// Query projection `[hidden, heads * head_dim]`.
    pub wq: Param<Tensor<B, 2>>,
    /// Key projection `[hidden, kv_heads * head_dim]`.
    pub wk: Param<Tensor<B, 2>>,
    /// Value projection `[hidden, kv_heads * head_dim]`.
    pub wv: Param<Tensor<B, 2>>,
    /// Output projection `[heads * head_dim, hidden]`.
    pub wo: Param<Tensor<B, 2>>,
    /// RMSNorm weight before the MLP.
    pub mlp_norm: Param<Tensor<B, 1>>,
    /// SwiGLU gate `[hidden, intermediate]`.
    pub w_gate: Param<Tensor<B, 2>>,
    /// SwiGLU up `[hidden, intermediate]`.
    pub w_up: Param<Tensor<B, 2>>,
    /// SwiGLU down `[intermediate, hidden]`.
    pub w_down: Param<Tensor<B, 2>>,
}

/// The decoder.
#[derive(Module, Debug)]
pub struct Llama<B: Backend> {
    /// The shape.
    #[module(skip)]
    pub config: ModelConfig,
    /// Token embedding `[vocab, hidden]`.
    pub embed: Param<Tensor<B, 2>>,
    /// Decoder blocks.
    pub layers: Vec<Block<B>>,
    /// Final RMSNorm weight.
    pub norm: Param<Tensor<B, 1>>,
    /// Output projection `[hidden, vocab]`; `None` when tied to the embedding.
    pub lm_head: Option<Param<Tensor<B, 2>>>,
}

fn param<B: Backend, const D: usize>(
    v: Vec<f32>,
    shape: [usize; D],
    dev: &B::Device,
) -> Param<Tensor<B, D>> {
    Param::from_tensor(Tensor::from_data(TensorData::new(v, shape), dev))
}

impl<B: Backend> Llama<B> {
    /// A model with random weights (normal, std [`INIT_STD`]; norms at 1),
    /// the same for a seed on every backend.
    pub fn init(config: &ModelConfig, seed: u64, device: &B::Device) -> Self {
        let mut rng = SplitMix::new(seed);
        let h = config.hidden_size;
        let hd = config.head_dim();
        let (q, kv, i) = (
            config.num_heads * hd,
            config.num_kv_heads * hd,
            config.intermediate_size,
        );
        let mut w =
            |a: usize, b: usize| param::<B, 2>(rng.normal_vec(a * b, INIT_STD), [a, b], device);
        let embed = w(config.vocab_size, h);
        let layers = (0..config.num_layers)
            .map(|_| Block {
                attn_norm: param(vec![1.0; h], [h], device),
                wq: w(h, q),
                wk: w(h, kv),
                wv: w(h, kv),
                wo: w(q, h),
                mlp_norm: param(vec![1.0; h], [h], device),
                w_gate: w(h, i),
                w_up: w(h, i),
                w_down: w(i, h),
            })
            .collect();
        let lm_head = (!config.tie_embeddings).then(|| w(h, config.vocab_size));
        Llama {
            config: config.clone(),
            embed,
            layers,
            norm: param(vec![1.0; h], [h], device),
            lm_head,
        }
    }

    /// The device of the weights.
    pub fn device(&self) -> B::Device {
        self.embed.val().device()
    }
}

impl<B: AprBackend> Llama<B> {
    /// Full-sequence forward for training: `tokens` `[batch, len]` →
    /// logits `[batch, len, vocab]`, causal. `lengths` (one per row) masks
    /// the keys of right padding; padded positions' logits are not meaningful.
    pub fn forward(&self, tokens: Tensor<B, 2, Int>, lengths: Option<&[usize]>) -> Tensor<B, 3> {
        let [b, t] = tokens.dims();
        let dev = tokens.device();
        let positions: Vec<i64> = (0..b).flat_map(|_| 0..t as i64).collect();
        let mask = lengths.map(|lens| {
            let mut m = Vec::with_capacity(b * t * t);
            for &len in lens {
                for q in 0..t {
                    m.extend((0..t).map(|k| k > q || k >= len));
                }
            }
            Tensor::<B, 3, Bool>::from_data(TensorData::new(m, [b, t, t]), &dev)
        });
        self.head(self.trunk(tokens, &positions, |_, q, k, v| {
            self.sdpa(q, k, v, mask.clone())
        }))
    }

    /// The forward every executor on burn shares: embeds `ids` `[b, t]`
    /// at `positions` (row-major `[b, t]`), runs each block with
    /// `attend(layer, q, k, v)` as its attention (see [`Self::block`]) and
    /// returns the last block's output `[b, t, hidden]`, before the head.
    /// The training forward attends causally within the batch; the cached
    /// forward ([`Self::forward_rows`]) over a [`crate::KvCache`].
    pub(crate) fn trunk(
        &self,
        ids: Tensor<B, 2, Int>,
        positions: &[i64],
        mut attend: impl FnMut(usize, Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>) -> Tensor<B, 4>,
    ) -> Tensor<B, 3> {
        let [b, t] = ids.dims();
        let rope = self.rope(positions, b, t, &ids.device());
        let mut x = burn::tensor::module::embedding(self.embed.val(), ids);
        for (i, layer) in self.layers.iter().enumerate() {
            x = self.block(layer, x, &rope, |q, k, v| attend(i, q, k, v));
        }
        x
    }

    /// Final norm and output projection: `[b, t, hidden]` → `[b, t, vocab]`.
    pub(crate) fn head(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let x = rms_norm(x, &self.norm, self.config.rms_norm_eps);
        match &self.lm_head {
            Some(w) => x.matmul(w.val().unsqueeze()),
            None => x.matmul(self.embed.val().transpose().unsqueeze()),
        }
    }

    /// Rotary tables for `positions` (row-major `[b, t]`), laid out as the
    /// block applies them: `[b, t, heads, head_dim]`, contiguous, for the
    /// query heads and for the key/value heads, so that every product
    /// with them runs on flex's contiguous fast path (a broadcast over the
    /// head axis would walk element by element), and the rotate-half
    /// permutation as a `[head_dim, head_dim]` matrix (a matmul instead of
    /// two strided slices and a concatenation).
    pub(crate) fn rope(&self, positions: &[i64], b: usize, t: usize, dev: &B::Device) -> Rope<B> {
        let c = &self.config;
        let hd = c.head_dim();
        let half = hd / 2;
        let inv = c.arch().rope_inv_freq();
        let table = |heads: usize| {
            let (mut cos, mut sin) = (
                Vec::with_capacity(b * t * heads * hd),
                Vec::with_capacity(b * t * heads * hd),
            );
            let (mut rc, mut rs) = (vec![0f32; hd], vec![0f32; hd]);
            for &p in positions {
                LlamaArch::rope_angles(&inv, p as usize, &mut rc[..half], &mut rs[..half]);
                rc.copy_within(..half, half);
                rs.copy_within(..half, half);
                for _ in 0..heads {
                    cos.extend_from_slice(&rc);
                    sin.extend_from_slice(&rs);
                }
            }
            let shape = [b, t, heads, hd];
            (
                Tensor::<B, 4>::from_data(TensorData::new(cos, shape), dev),
                Tensor::<B, 4>::from_data(TensorData::new(sin, shape), dev),
            )
        };
        let q = table(c.num_heads);
        let kv = if c.num_kv_heads == c.num_heads {
            q.clone()
        } else {
            table(c.num_kv_heads)
        };
        // rotated = x R: rotated[j] = -x[j + half] (j < half), x[j - half] (j >= half).
        let mut r = vec![0f32; hd * hd];
        for j in 0..half {
            r[(j + half) * hd + j] = -1.0;
            r[j * hd + j + half] = 1.0;
        }
        let rotate = Tensor::<B, 2>::from_data(TensorData::new(r, [hd, hd]), dev).unsqueeze();
        Rope { q, kv, rotate }
    }

    /// One block. `attend` receives the block's new keys and values
    /// (`[b, kv_heads, t, head_dim]`, rotated) and returns the keys and
    /// values to attend to: the same for a full forward, the cache's for
    /// cached decoding.
    fn block(
        &self,
        layer: &Block<B>,
        x: Tensor<B, 3>,
        rope: &Rope<B>,
        attend: impl FnOnce(Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>) -> Tensor<B, 4>,
    ) -> Tensor<B, 3> {
        let c = &self.config;
        let [b, t, _] = x.dims();
        let (nh, nkv, hd) = (c.num_heads, c.num_kv_heads, c.head_dim());
        let xn = rms_norm(x.clone(), &layer.attn_norm, c.rms_norm_eps);
        let q = xn.clone().matmul(layer.wq.val().unsqueeze());
        let k = xn.clone().matmul(layer.wk.val().unsqueeze());
        let v = xn.matmul(layer.wv.val().unsqueeze());
        let q = apply_rope(q.reshape([b, t, nh, hd]), &rope.q, &rope.rotate).swap_dims(1, 2);
        let k = apply_rope(k.reshape([b, t, nkv, hd]), &rope.kv, &rope.rotate).swap_dims(1, 2);
        let v = v.reshape([b, t, nkv, hd]).swap_dims(1, 2);
        let a = attend(q, k, v);
        let a = a.swap_dims(1, 2).reshape([b, t, nh * hd]);
        let x = x + a.matmul(layer.wo.val().unsqueeze());
        let xn = rms_norm(x.clone(), &layer.mlp_norm, c.rms_norm_eps);
        let g = xn.clone().matmul(layer.w_gate.val().unsqueeze());
        let u = xn.matmul(layer.w_up.val().unsqueeze());
        let h = B::swiglu(g.into_primitive().tensor(), u.into_primitive().tensor());
        let h = Tensor::<B, 3>::from_primitive(TensorPrimitive::Float(h));
        x + h.matmul(layer.w_down.val().unsqueeze())
    }
}

impl<B: AprBackend> Llama<B> {
    /// Scaled dot-product attention of `q` `[b, heads, t, hd]` over `k`, `v`
    /// `[b, kv_heads, tk, hd]`: with `mask` (`[b, t, tk]`, true = hidden),
    /// or causal (the training path's own autodiff op) without.
    pub(crate) fn sdpa(
        &self,
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
        mask: Option<Tensor<B, 3, Bool>>,
    ) -> Tensor<B, 4> {
        let c = &self.config;
        let [b, nh, t, _] = q.dims();
        let tk = k.dims()[2];
        let k = repeat_kv(k, nh / c.num_kv_heads);
        let v = repeat_kv(v, nh / c.num_kv_heads);
        match mask {
            Some(m) => {
                let m = m.unsqueeze_dim::<4>(1).expand([b, nh, t, tk]);
                let opts = AttentionModuleOptions {
                    scale: None,
                    softcap: None,
                    is_causal: false,
                };
                attention(q, k, v, Some(m), None, opts)
            }
            None => Tensor::from_primitive(TensorPrimitive::Float(B::causal_attention(
                q.into_primitive().tensor(),
                k.into_primitive().tensor(),
                v.into_primitive().tensor(),
            ))),
        }
    }
}

/// RMSNorm as Llama computes it: `x / sqrt(mean(x^2) + eps) * w`.
pub(crate) fn rms_norm<B: Backend>(
    x: Tensor<B, 3>,
    w: &Param<Tensor<B, 1>>,
    eps: f64,
) -> Tensor<B, 3> {
    let rms = (x.clone().square().mean_dim(2) + eps).sqrt();
    x / rms * w.val().unsqueeze()
}

/// Rotary tables of one forward pass (see [`Llama::rope`]).
pub(crate) struct Rope<B: Backend> {
    /// cos and sin `[b, t, num_heads, head_dim]`.
    q: (Tensor<B, 4>, Tensor<B, 4>),
    /// cos and sin `[b, t, num_kv_heads, head_dim]`.
    kv: (Tensor<B, 4>, Tensor<B, 4>),
    /// The rotate-half permutation `[1, 1, head_dim, head_dim]`.
    rotate: Tensor<B, 4>,
}

/// Rotary embedding, rotate-half convention (as Hugging Face Llama), on
/// `x` `[b, t, heads, head_dim]`.
fn apply_rope<B: Backend>(
    x: Tensor<B, 4>,
    (cos, sin): &(Tensor<B, 4>, Tensor<B, 4>),
    rotate: &Tensor<B, 4>,
) -> Tensor<B, 4> {
    let rotated = x.clone().matmul(rotate.clone());
    x * cos.clone() + rotated * sin.clone()
}

/// Repeats each key/value head `n` times (grouped-query attention).
fn repeat_kv<B: Backend>(x: Tensor<B, 4>, n: usize) -> Tensor<B, 4> {
    if n == 1 {
        return x;
    }
    let [b, kv, t, d] = x.dims();
    x.unsqueeze_dim::<5>(2)
        .expand([b, kv, n, t, d])
        .reshape([b, kv * n, t, d])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Cpu;

    /// Rotate-half by hand for head_dim 4, position 1, theta 100:
    /// frequencies 1 and 0.1; x = [1, 2, 3, 4] rotates to [-3, -4, 1, 2].
    #[test]
    fn rope_rotates_half_as_hugging_face() {
        let mut cfg = ModelConfig::preset("tiny").unwrap();
        (
            cfg.hidden_size,
            cfg.num_heads,
            cfg.num_kv_heads,
            cfg.rope_theta,
        ) = (4, 1, 1, 100.0);
        let dev = Default::default();
        let model = Llama::<Cpu>::init(&cfg, 1, &dev);
        let rope = model.rope(&[1], 1, 1, &dev);
        let x = Tensor::<Cpu, 4>::from_data(
            TensorData::new(vec![1f32, 2., 3., 4.], [1, 1, 1, 4]),
            &dev,
        );
        let y: Vec<f32> = apply_rope(x, &rope.q, &rope.rotate)
            .into_data()
            .to_vec()
            .unwrap();
        let (c0, s0, c1, s1) = (1f32.cos(), 1f32.sin(), 0.1f32.cos(), 0.1f32.sin());
        let want = [
            1. * c0 - 3. * s0,
            2. * c1 - 4. * s1,
            3. * c0 + s0,
            4. * c1 + 2. * s1,
        ];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{y:?} vs {want:?}");
        }
    }
}
