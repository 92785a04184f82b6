use super::*;
use crate::kv::KvElem;
use crate::rng::SplitMix;

fn arch(tied: bool, kv_heads: usize) -> LlamaArch {
    LlamaArch {
        vocab: 50,
        hidden: 64,
        intermediate: 96,
        layers: 2,
        heads: 2,
        kv_heads,
        max_seq_len: 40,
        rope_theta: 10_000.0,
        rms_norm_eps: 1e-5,
        tied,
    }
}

fn random_weights(a: &LlamaArch, seed: u64) -> Weights {
    let mut rng = SplitMix::new(seed);
    let mut w = |n: usize| rng.normal_vec(n, 0.1);
    let (h, hd, i) = (a.hidden, a.head_dim(), a.intermediate);
    let (q, kv) = (a.heads * hd, a.kv_heads * hd);
    let layers = (0..a.layers)
        .map(|_| BlockWeights {
            attn_norm: vec![1.0; h],
            wq: w(h * q),
            wk: w(h * kv),
            wv: w(h * kv),
            wo: w(q * h),
            mlp_norm: vec![1.0; h],
            w_gate: w(h * i),
            w_up: w(h * i),
            w_down: w(i * h),
        })
        .collect();
    Weights {
        embed: w(a.vocab * h),
        layers,
        norm: vec![1.0; h],
        lm_head: (!a.tied).then(|| w(h * a.vocab)),
    }
}

fn cache(a: &LlamaArch, rows: usize, elem: KvElem) -> (HostKv, Vec<usize>) {
    let kv = HostKv::new(a.layers, rows, a.kv_heads, a.head_dim(), elem).unwrap();
    (kv, vec![0; rows])
}

/// One layer whose attention output and MLP down projection are zero:
/// the residual stream is the embedding, so the logits are
/// `rms_norm(embed[t]) @ embed^T` (tied). Embedding rows (3, 4) and
/// (1, 0): token 0 gives (25, 3) / sqrt(12.5).
#[test]
fn an_identity_block_gives_the_normed_embedding_logits_by_hand() {
    let a = LlamaArch {
        vocab: 2,
        hidden: 2,
        intermediate: 1,
        layers: 1,
        heads: 1,
        kv_heads: 1,
        max_seq_len: 4,
        rope_theta: 100.0,
        rms_norm_eps: 0.0,
        tied: true,
    };
    let block = BlockWeights {
        attn_norm: vec![1.0; 2],
        wq: vec![0.3; 4],
        wk: vec![0.2; 4],
        wv: vec![0.1; 4],
        wo: vec![0.0; 4],
        mlp_norm: vec![1.0; 2],
        w_gate: vec![0.5; 2],
        w_up: vec![0.5; 2],
        w_down: vec![0.0; 2],
    };
    let w = Weights {
        embed: vec![3.0, 4.0, 1.0, 0.0],
        layers: vec![block],
        norm: vec![1.0, 1.0],
        lm_head: None,
    };
    let mut d = Decoder::new(a.clone(), w).unwrap();
    let (mut kv, mut lens) = (HostKv::new(1, 1, 1, 2, KvElem::F32).unwrap(), vec![0]);
    let got = d.forward_last(&mut kv, &mut lens, 4, &[(0, &[0])]).unwrap();
    let r = 12.5f32.sqrt();
    assert!((got[0][0] - 25.0 / r).abs() < 1e-5 && (got[0][1] - 3.0 / r).abs() < 1e-5);
    assert_eq!(lens, [1]);
}

/// `rows` prompts of different lengths run together in one cache and
/// each alone in its own: each row's logits have the same bits.
#[test]
fn a_row_gives_the_same_bits_alone_or_in_a_batch() {
    for (elem, tied, kvh) in [(KvElem::F32, true, 2), (KvElem::Bf16, false, 1)] {
        let a = arch(tied, kvh);
        let mut d = Decoder::new(a.clone(), random_weights(&a, 7)).unwrap();
        let prompts: Vec<Vec<u32>> = (0..5u32)
            .map(|r| (0..3 + r).map(|i| (i * 31 + r) % 50).collect())
            .collect();
        let feed: Vec<(usize, &[u32])> = prompts.iter().map(|p| &p[..]).enumerate().collect();
        let (mut kv, mut lens) = cache(&a, 5, elem);
        let all = d.forward_last(&mut kv, &mut lens, 40, &feed).unwrap();
        for (r, p) in prompts.iter().enumerate() {
            let (mut kv, mut lens) = cache(&a, 1, elem);
            let got = d.forward_last(&mut kv, &mut lens, 40, &[(0, p)]).unwrap();
            assert_eq!(got[0], all[r], "row {r}");
        }
    }
}

/// A prompt fed at once or token by token: the last logits agree (to the
/// summation order of the products).
#[test]
fn prefill_and_token_by_token_agree() {
    let a = arch(false, 1);
    let mut d = Decoder::new(a.clone(), random_weights(&a, 9)).unwrap();
    let prompt: Vec<u32> = (0..12).map(|i| (i * 7 % 50) as u32).collect();
    let (mut kv, mut lens) = cache(&a, 1, KvElem::F32);
    let once = d
        .forward_last(&mut kv, &mut lens, 40, &[(0, &prompt)])
        .unwrap();
    let (mut kv, mut lens) = cache(&a, 1, KvElem::F32);
    let mut last = Vec::new();
    for t in &prompt {
        last = d
            .forward_last(&mut kv, &mut lens, 40, &[(0, &[*t])])
            .unwrap();
    }
    let worst = once[0]
        .iter()
        .zip(&last[0])
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-5, "max |diff| {worst}");
    assert_eq!(lens, [12]);
}

#[test]
fn the_cache_commits_memory_as_rows_fill() {
    let a = arch(true, 2);
    let mut d = Decoder::new(a.clone(), random_weights(&a, 1)).unwrap();
    let (mut kv, mut lens) = cache(&a, 2, KvElem::F32);
    // One position: 2 layers x (keys + values) x 2 heads x 32 x 4 bytes.
    let per = 2 * 2 * 2 * 32 * 4;
    d.forward_last(&mut kv, &mut lens, 5, &[(1, &[3, 4, 5])])
        .unwrap();
    assert_eq!(kv.committed_bytes(), 3 * per);
    d.forward_last(&mut kv, &mut lens, 5, &[(1, &[6])]).unwrap();
    // Doubled, but never past the capacity of 5.
    assert_eq!(kv.committed_bytes(), 5 * per);
}

#[test]
fn bad_inputs_are_errors() {
    let a = arch(true, 2);
    let mut d = Decoder::new(a.clone(), random_weights(&a, 1)).unwrap();
    let (mut kv, mut lens) = cache(&a, 2, KvElem::F32);
    assert!(d.forward_last(&mut kv, &mut lens, 8, &[]).is_err());
    assert!(d.forward_last(&mut kv, &mut lens, 8, &[(2, &[1])]).is_err());
    assert!(d
        .forward_last(&mut kv, &mut lens, 8, &[(0, &[60])])
        .is_err());
    // Past the context window of 40 though within the capacity.
    assert!(d
        .forward_last(&mut kv, &mut lens, 64, &[(0, &[1; 41])])
        .is_err());
    let mut other = HostKv::new(3, 2, 2, 32, KvElem::F32).unwrap();
    assert!(d
        .forward_last(&mut other, &mut lens, 8, &[(0, &[1])])
        .is_err());
    assert_eq!(lens, [0, 0]);
    // Weights that do not fit the architecture.
    let mut w = random_weights(&a, 1);
    w.layers[1].wk.pop();
    let err = Decoder::new(a.clone(), w).unwrap_err().to_string();
    assert!(err.contains("layer 1 wk"), "{err}");
    let mut w = random_weights(&a, 1);
    w.lm_head = Some(vec![0.0; 64 * 50]);
    assert!(Decoder::new(a, w).is_err());
}
