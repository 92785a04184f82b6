//! The KV cache kept as backend tensors, for backends whose memory is not
//! the host's (CUDA): a decode step writes its new keys and values and
//! reads the rows' prefixes on the device, with no host round trip.
//!
//! Layout: per layer, keys and values are each one
//! `[rows * positions, kv_heads * head_dim]` tensor, row `r`'s position
//! `p` at index `r * positions + p`. A step
//! - writes its new tokens' keys and values with one `scatter_nd`
//!   (assign) per tensor, in place where the backend can (burn's CUDA
//!   backend does when the tensor has one owner, which this cache keeps);
//! - reads the fed rows' first `L` positions (`L` the longest fed row
//!   after the step) with one `select`, as `[b, kv_heads, L, head_dim]`,
//!   for the model's attention (`Llama::sdpa`) with the step's mask:
//!   positions past a row's length and later queries' keys hidden.
//!
//! `positions` (the same for every row) grows by doubling, up to the
//! capacity, as the longest row grows, so memory follows the longest row
//! rather than the capacity. The host-memory layout of
//! [`crate::KvCache`] (rows grown one by one) remains the CPU's.

use crate::config::ModelConfig;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, IndexingUpdateOp, Int, Tensor, TensorData};

/// Keys and values of every layer as device tensors.
#[derive(Debug)]
pub(crate) struct DeviceKv<B: Backend> {
    /// Per layer: keys, then values, `[rows * positions, kv_heads * head_dim]`
    /// (`placeholder` until the first step).
    layers: Vec<(Tensor<B, 2>, Tensor<B, 2>)>,
    /// A 1 x 1 tensor that stands in for a cache tensor while it is being
    /// updated (no zero-sized buffers, which a GPU runtime may refuse).
    placeholder: Tensor<B, 2>,
    /// Positions allocated per row.
    pub(crate) positions: usize,
    device: B::Device,
}

/// One step's indices and mask, shared by every layer.
pub(crate) struct StepPlan<B: Backend> {
    /// Rows of the step's `[b * t, width]` new keys that are real tokens
    /// (not padding), in order.
    src: Tensor<B, 1, Int>,
    /// Where each of them goes in the cache, `[n, 1]`.
    dst: Tensor<B, 2, Int>,
    /// The cache rows to read, `[b * len]`: fed row `i`'s positions
    /// `0..len`.
    read: Tensor<B, 1, Int>,
    /// `[b, t, len]`: true where a query may not see a key.
    pub(crate) mask: Tensor<B, 3, Bool>,
    len: usize,
    b: usize,
    t: usize,
}

impl<B: Backend> DeviceKv<B> {
    /// An empty cache for `config`'s layers on `device`.
    pub(crate) fn new(config: &ModelConfig, device: &B::Device) -> Self {
        let placeholder = Tensor::<B, 2>::zeros([1, 1], device);
        DeviceKv {
            layers: (0..config.num_layers)
                .map(|_| (placeholder.clone(), placeholder.clone()))
                .collect(),
            placeholder,
            positions: 0,
            device: device.clone(),
        }
    }

    /// Makes every row hold at least `need` positions (at most
    /// `capacity`), doubling, and keeps what the rows held.
    pub(crate) fn grow(&mut self, need: usize, capacity: usize, rows: usize, width: usize) {
        let old = self.positions;
        if need <= old {
            return;
        }
        let new = need.max(2 * old).min(capacity);
        for (k, v) in &mut self.layers {
            for x in [k, v] {
                let fresh = Tensor::<B, 3>::zeros([rows, new, width], &self.device);
                let fresh = if old == 0 {
                    fresh
                } else {
                    let kept = x.clone().reshape([rows, old, width]);
                    fresh.slice_assign([0..rows, 0..old, 0..width], kept)
                };
                *x = fresh.reshape([rows * new, width]);
            }
        }
        self.positions = new;
    }

    /// The indices and mask of a step feeding `(row, new tokens)` pairs to
    /// rows that held `lens[i]` tokens before it (after [`Self::grow`]).
    pub(crate) fn plan(&self, slots: &[usize], lens: &[usize], news: &[usize]) -> StepPlan<B> {
        let (b, t) = (slots.len(), news.iter().copied().max().unwrap_or(0));
        let len = lens.iter().zip(news).map(|(l, n)| l + n).max().unwrap_or(0);
        let p = self.positions;
        let (mut src, mut dst, mut read) = (Vec::new(), Vec::new(), Vec::with_capacity(b * len));
        let mut mask = Vec::with_capacity(b * t * len);
        for i in 0..b {
            let (slot, l, n) = (slots[i], lens[i], news[i]);
            for j in 0..n {
                src.push((i * t + j) as i64);
                dst.push((slot * p + l + j) as i64);
            }
            read.extend((0..len).map(|q| (slot * p + q) as i64));
            for j in 0..t {
                // A padding query (j >= n) sees what the row's last does.
                let last = l + j.min(n.saturating_sub(1));
                mask.extend((0..len).map(|q| q > last));
            }
        }
        let d = &self.device;
        let n = src.len();
        StepPlan {
            src: Tensor::from_data(TensorData::new(src, [n]), d),
            dst: Tensor::from_data(TensorData::new(dst, [n, 1]), d),
            read: Tensor::from_data(TensorData::new(read, [b * len]), d),
            mask: Tensor::from_data(TensorData::new(mask, [b, t, len]), d),
            len,
            b,
            t,
        }
    }

    /// Layer `layer`'s step: writes `k`, `v` (`[b, kv_heads, t, hd]`, the
    /// fed rows' new keys and values, rotated) into the cache and returns
    /// the fed rows' keys and values after it, `[b, kv_heads, len, hd]`
    /// (positions past a row's length are stale: `plan.mask` hides them).
    pub(crate) fn update(
        &mut self,
        layer: usize,
        plan: &StepPlan<B>,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let [_, kvh, _, hd] = k.dims();
        let (b, t, len, width) = (plan.b, plan.t, plan.len, kvh * hd);
        let placeholder = &self.placeholder;
        let write = |cache: &mut Tensor<B, 2>, new: Tensor<B, 4>| -> Tensor<B, 4> {
            let new = new
                .swap_dims(1, 2)
                .reshape([b * t, width])
                .select(0, plan.src.clone());
            // Taken out of the cache so that the scatter owns it (in place).
            let old = std::mem::replace(cache, placeholder.clone());
            *cache = old.scatter_nd(plan.dst.clone(), new, IndexingUpdateOp::Assign);
            cache
                .clone()
                .select(0, plan.read.clone())
                .reshape([b, len, kvh, hd])
                .swap_dims(1, 2)
        };
        let (kc, vc) = &mut self.layers[layer];
        (write(kc, k), write(vc, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{KvCache, Logits};
    use crate::model::Llama;
    use crate::Cpu;

    fn ints(t: Tensor<Cpu, 1, Int>) -> Vec<i64> {
        t.into_data().convert::<i64>().into_vec().unwrap()
    }

    #[test]
    fn plan_by_hand() {
        let mut c = ModelConfig::preset("tiny").unwrap();
        c.num_layers = 1;
        let mut d = DeviceKv::<Cpu>::new(&c, &Default::default());
        d.grow(4, 8, 3, 2);
        assert_eq!(d.positions, 4);
        // Slot 2 holds 1 token and gets 2; slot 0 holds 3 and gets 1.
        let p = d.plan(&[2, 0], &[1, 3], &[2, 1]);
        assert_eq!((p.b, p.t, p.len), (2, 2, 4));
        // New keys [b * t]: rows 0, 1 (slot 2) and 2 (slot 0; 3 is padding).
        assert_eq!(ints(p.src), [0, 1, 2]);
        let dst: Vec<i64> = p.dst.into_data().convert::<i64>().into_vec().unwrap();
        assert_eq!(dst, [2 * 4 + 1, 2 * 4 + 2, 3]);
        assert_eq!(ints(p.read), [8, 9, 10, 11, 0, 1, 2, 3]);
        let m: Vec<bool> = p.mask.into_data().into_vec().unwrap();
        let (o, x) = (false, true);
        #[rustfmt::skip]
        let want = [
            o, o, x, x, // slot 2, query at position 1
            o, o, o, x, // slot 2, query at position 2
            o, o, o, o, // slot 0, query at position 3
            o, o, o, o, // slot 0, padding: as its last query
        ];
        assert_eq!(m, want);
        // Growing past the capacity stops at it.
        d.grow(7, 6, 3, 2);
        assert_eq!(d.positions, 6);
    }

    fn last(l: Logits<Cpu>) -> Vec<f32> {
        let Logits::Last(l) = l else { unreachable!() };
        l.into_data().into_vec::<f32>().unwrap()
    }

    /// Steps with rows of different lengths, idle rows, a truncated row
    /// (prefix reuse) and growth past several doublings: the device-tensor
    /// cache gives the host cache's logits.
    #[test]
    fn matches_the_host_cache() {
        for kv_heads in [4, 2] {
            let mut c = ModelConfig::preset("tiny").unwrap();
            c.num_layers = 2;
            c.num_kv_heads = kv_heads;
            c.max_seq_len = 128;
            let m = Llama::<Cpu>::init(&c, 11, &Default::default());
            let dev = Default::default();
            let mut host = KvCache::<Cpu>::on_host(&c, 3, 100);
            let mut device = KvCache::<Cpu>::on_device(&c, 3, 100, &dev);
            assert!(device.is_on_device() && !host.is_on_device());
            let mut steps: Vec<Vec<(usize, Vec<u32>)>> = vec![
                vec![(0, vec![5, 9, 200, 3]), (2, vec![17]), (1, vec![1, 2])],
                vec![(2, vec![44]), (0, vec![1000])],
                vec![(1, (0..40).map(|i| i * 13 % 1200).collect()), (0, vec![12])],
            ];
            for i in 0..20u32 {
                steps.push(vec![(0, vec![i * 7 % 1233]), (1, vec![i * 11 % 1233])]);
            }
            let mut worst = 0.0f32;
            for (n, step) in steps.iter().enumerate() {
                if n == 5 {
                    host.truncate_row(1, 30).unwrap();
                    device.truncate_row(1, 30).unwrap();
                }
                let feed: Vec<(usize, &[u32])> = step.iter().map(|(r, t)| (*r, &t[..])).collect();
                let want = last(m.forward_rows(&mut host, &feed, false).unwrap());
                let got = last(m.forward_rows(&mut device, &feed, false).unwrap());
                assert_eq!(want.len(), got.len());
                for (w, g) in want.iter().zip(&got) {
                    worst = worst.max((w - g).abs());
                }
                assert_eq!(host.lens(), device.lens());
            }
            eprintln!("kv heads {kv_heads}: max |diff| {worst:e}");
            assert!(worst < 1e-4, "kv heads {kv_heads}: max |diff| {worst}");
            // Positions per row: 4 (first step), 8 (row 0 needs 5), 42
            // (row 1's 40-token prefill), 84 (row 1 needs 43).
            let per = 2 * 2 * kv_heads * 32 * 4;
            assert_eq!(device.committed_bytes(), 3 * 84 * per);
        }
    }

    #[test]
    fn the_host_decoder_refuses_a_device_cache() {
        let mut c = ModelConfig::preset("tiny").unwrap();
        c.num_layers = 1;
        let m = Llama::<Cpu>::init(&c, 1, &Default::default());
        let mut host = crate::HostDecoder::new(&m).unwrap();
        let mut cache = KvCache::<Cpu>::on_device(&c, 1, 8, &Default::default());
        assert!(host.forward_last(&mut cache, &[(0, &[1][..])]).is_err());
    }
}
