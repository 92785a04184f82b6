//! The model's executors are twins: the training forward
//! ([`Llama::forward`]), the cached burn forward over each kind of cache
//! ([`Llama::forward_rows`]) and the host decoder ([`HostDecoder`]), all
//! built from one [`ModelConfig::arch`], give the same logits at every
//! position of the same sequences.

use apr_model::{Cpu, HostDecoder, KvCache, KvElem, KvKind, Llama, Logits, ModelConfig};
use burn::tensor::{Tensor, TensorData};

/// Largest |difference| allowed between executors that sum in different
/// orders (logits are O(1)).
const TOL: f32 = 1e-4;

fn config(tied: bool, kv_heads: usize) -> ModelConfig {
    ModelConfig {
        name: "twins".into(),
        vocab_size: 60,
        hidden_size: 64,
        intermediate_size: 96,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: kv_heads,
        max_seq_len: 48,
        rope_theta: 500.0,
        rms_norm_eps: 1e-5,
        tie_embeddings: tied,
    }
}

fn seq(n: usize, salt: u32) -> Vec<u32> {
    (0..n as u32)
        .map(|i| (i * 11 + salt * 17 + 5) % 60)
        .collect()
}

fn worst(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Two rows of different lengths: the training forward's logits at every
/// position (one row at a time, so no padding), then each cached executor
/// fed a prefill of 5 and 3 tokens and the rest in steps of 1 and 2
/// tokens, compared position by position.
#[test]
fn every_executor_computes_the_training_forwards_logits() {
    for (tied, kvh) in [(false, 2), (true, 4), (false, 1)] {
        let c = config(tied, kvh);
        let dev = Default::default();
        let m = Llama::<Cpu>::init(&c, 21, &dev);
        let rows = [seq(17, 1), seq(12, 2)];
        let v = c.vocab_size;
        let full: Vec<Vec<f32>> = rows
            .iter()
            .map(|r| {
                let ids: Vec<i64> = r.iter().map(|&t| t as i64).collect();
                let t = Tensor::from_data(TensorData::new(ids, [1, r.len()]), &dev);
                m.forward(t, None).into_data().to_vec::<f32>().unwrap()
            })
            .collect();
        // (row, start, count) chunks: prefills, then mixed steps.
        let mut plan: Vec<Vec<(usize, usize, usize)>> = vec![vec![(0, 0, 5), (1, 0, 3)]];
        let (mut at0, mut at1) = (5, 3);
        while at0 < 17 || at1 < 12 {
            let mut step = Vec::new();
            if at0 < 17 {
                step.push((0, at0, 1));
                at0 += 1;
            }
            if at1 < 12 {
                let n = 2.min(12 - at1);
                step.push((1, at1, n));
                at1 += n;
            }
            plan.push(step);
        }
        let want = |r: usize, end: usize| &full[r][(end - 1) * v..end * v];
        let feed_of = |step: &[(usize, usize, usize)]| -> Vec<(usize, Vec<u32>)> {
            step.iter()
                .map(|&(r, s, n)| (r, rows[r][s..s + n].to_vec()))
                .collect()
        };
        let kinds = [
            KvKind::Host(KvElem::F32),
            KvKind::Host(KvElem::Bf16),
            KvKind::Device,
        ];
        for kind in kinds {
            let mut cache = KvCache::<Cpu>::with_kind(&c, 2, 48, kind, &dev).unwrap();
            let mut d = 0.0f32;
            for step in &plan {
                let owned = feed_of(step);
                let feed: Vec<(usize, &[u32])> = owned.iter().map(|(r, t)| (*r, &t[..])).collect();
                let Logits::All(l) = m.forward_rows(&mut cache, &feed, true).unwrap() else {
                    panic!("asked for all logits")
                };
                let l = l.into_data().to_vec::<f32>().unwrap();
                let t = step.iter().map(|s| s.2).max().unwrap();
                for (i, &(r, s, n)) in step.iter().enumerate() {
                    for j in 0..n {
                        let got = &l[(i * t + j) * v..(i * t + j + 1) * v];
                        d = d.max(worst(got, want(r, s + j + 1)));
                    }
                }
            }
            // A bfloat16 cache rounds keys and values: close, not equal.
            let tol = if kind == KvKind::Host(KvElem::Bf16) {
                3e-2
            } else {
                TOL
            };
            assert!(d < tol, "tied {tied}, kv {kvh}, burn over {kind:?}: {d}");
        }
        let mut host = HostDecoder::new(&m).unwrap();
        let mut cache = KvCache::<Cpu>::on_host(&c, 2, 48);
        let mut d = 0.0f32;
        for step in &plan {
            let owned = feed_of(step);
            let feed: Vec<(usize, &[u32])> = owned.iter().map(|(r, t)| (*r, &t[..])).collect();
            let got = host.forward_last(&mut cache, &feed).unwrap();
            for (g, &(r, s, n)) in got.iter().zip(step) {
                d = d.max(worst(g, want(r, s + n)));
            }
        }
        assert!(d < TOL, "tied {tied}, kv {kvh}, host decoder: {d}");
        assert_eq!(cache.lens(), &[17, 12]);
    }
}
