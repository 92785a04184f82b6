//! The model's two forward paths, the cache, and checkpoints.

use apr_model::checkpoint::{self, hf_tensors};
use apr_model::{Cpu, KvCache, Llama, Logits, ModelConfig};
use burn::tensor::{Int, Tensor, TensorData};

type B = Cpu;

/// A small model with grouped heads, so every path is exercised.
fn config() -> ModelConfig {
    ModelConfig {
        name: "test".into(),
        vocab_size: 50,
        hidden_size: 32,
        intermediate_size: 48,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: 2,
        max_seq_len: 64,
        rope_theta: 10000.0,
        rms_norm_eps: 1e-5,
        tie_embeddings: false,
    }
}

fn model() -> Llama<B> {
    Llama::init(&config(), 11, &Default::default())
}

fn tokens(rows: &[Vec<u32>]) -> Tensor<B, 2, Int> {
    let t = rows[0].len();
    let flat: Vec<i64> = rows.iter().flatten().map(|&x| x as i64).collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), t]), &Default::default())
}

fn host<const D: usize>(x: Tensor<B, D>) -> Vec<f32> {
    x.into_data().to_vec::<f32>().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Tolerance for f32 paths that sum in different orders.
const TOL: f32 = 1e-4;

fn seq(n: usize, salt: u32) -> Vec<u32> {
    (0..n as u32)
        .map(|i| (i * 7 + salt * 13 + 3) % 50)
        .collect()
}

#[test]
fn later_tokens_never_change_earlier_logits() {
    let m = model();
    let a = seq(12, 1);
    let mut b = a.clone();
    for x in &mut b[7..] {
        *x = (*x + 5) % 50;
    }
    let la = host(m.forward(tokens(&[a]), None));
    let lb = host(m.forward(tokens(&[b]), None));
    let v = 50;
    assert!(max_diff(&la[..7 * v], &lb[..7 * v]) < 1e-6);
    // The test can fail: position 7 itself does change.
    assert!(max_diff(&la[7 * v..8 * v], &lb[7 * v..8 * v]) > 1e-3);
}

#[test]
fn padding_mask_matches_the_unpadded_row() {
    let m = model();
    let short = seq(5, 2);
    let mut padded = short.clone();
    padded.extend([0, 0, 0]);
    let long = seq(8, 3);
    let both = host(m.forward(tokens(&[padded, long.clone()]), Some(&[5, 8])));
    let alone = host(m.forward(tokens(&[short]), None));
    let v = 50;
    assert!(max_diff(&both[..5 * v], &alone) < TOL);
    let long_alone = host(m.forward(tokens(&[long]), None));
    assert!(max_diff(&both[8 * v..], &long_alone) < TOL);
}

#[test]
fn cached_decoding_equals_the_full_forward() {
    let m = model();
    let s = seq(20, 4);
    let full = host(m.forward(tokens(std::slice::from_ref(&s)), None));
    let v = 50;
    let mut cache = KvCache::new(&config(), 1, 64, &Default::default());
    // Prefill 8, then one token at a time.
    let Logits::All(pre) = m.forward_cached(&mut cache, &[&s[..8]], true).unwrap() else {
        panic!()
    };
    assert!(max_diff(&host(pre), &full[..8 * v]) < TOL);
    for i in 8..20 {
        let Logits::Last(l) = m
            .forward_cached(&mut cache, &[&s[i..i + 1]], false)
            .unwrap()
        else {
            panic!()
        };
        let d = max_diff(&host(l), &full[i * v..(i + 1) * v]);
        assert!(d < TOL, "position {i}: {d}");
    }
    assert_eq!(cache.lens(), &[20]);
}

#[test]
fn a_batch_of_rows_of_different_lengths_decodes_as_each_alone() {
    let m = model();
    let rows: Vec<Vec<u32>> = [9, 15, 15, 18]
        .iter()
        .enumerate()
        .map(|(r, &n)| seq(n, r as u32))
        .collect();
    let full: Vec<Vec<f32>> = rows
        .iter()
        .map(|r| host(m.forward(tokens(std::slice::from_ref(r)), None)))
        .collect();
    let v = 50;
    let mut cache = KvCache::new(&config(), 4, 40, &Default::default());
    // Step 1: prefills of different lengths, row 3 idle.
    let plan: Vec<Vec<(usize, usize)>> = vec![
        vec![(0, 4), (0, 7), (0, 2), (0, 0)],
        vec![(4, 5), (7, 8), (2, 6), (0, 5)],
        vec![(5, 9), (8, 12), (6, 7), (5, 6)],
        vec![(9, 9), (12, 15), (7, 15), (6, 18)],
    ];
    for step in plan {
        let chunks: Vec<&[u32]> = step
            .iter()
            .zip(&rows)
            .map(|(&(a, b), r)| &r[a..b])
            .collect();
        let Logits::All(l) = m.forward_cached(&mut cache, &chunks, true).unwrap() else {
            panic!()
        };
        let t = chunks.iter().map(|c| c.len()).max().unwrap();
        let l = host(l);
        for (r, &(a, b)) in step.iter().enumerate() {
            for (i, p) in (a..b).enumerate() {
                let got = &l[(r * t + i) * v..(r * t + i + 1) * v];
                let d = max_diff(got, &full[r][p * v..(p + 1) * v]);
                assert!(d < TOL, "row {r} position {p}: {d}");
            }
        }
    }
    assert_eq!(cache.lens(), &[9, 15, 15, 18]);
    // Truncate row 1 to 10 and decode again from there: same logits.
    cache.truncate_row(1, 10).unwrap();
    let Logits::Last(l) = m
        .forward_cached(&mut cache, &[&[], &rows[1][10..13], &[], &[]], false)
        .unwrap()
    else {
        panic!()
    };
    let l = host(l);
    assert!(max_diff(&l[v..2 * v], &full[1][12 * v..13 * v]) < TOL);
}

#[test]
fn cache_errors_are_reported_not_panics() {
    let m = model();
    let mut cache = KvCache::new(&config(), 2, 8, &Default::default());
    assert!(m.forward_cached(&mut cache, &[&[1, 2]], false).is_err());
    assert!(m.forward_cached(&mut cache, &[&[], &[]], false).is_err());
    assert!(m
        .forward_cached(&mut cache, &[&[1; 9], &[]], false)
        .is_err());
    assert!(m.forward_cached(&mut cache, &[&[50], &[]], false).is_err());
    assert_eq!(cache.lens(), &[0, 0]);
}

#[test]
fn checkpoint_round_trip_is_exact() {
    let m = model();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt");
    checkpoint::save(&m, &path, Some("{}")).unwrap();
    // Saving again replaces the directory whole.
    checkpoint::save(&m, &path, Some("{}")).unwrap();
    let back: Llama<B> = checkpoint::load(&path, &Default::default()).unwrap();
    assert_eq!(back.config, m.config);
    assert_eq!(hf_tensors(&back), hf_tensors(&m));
    let s = seq(10, 5);
    let a = host(m.forward(tokens(std::slice::from_ref(&s)), None));
    let b = host(back.forward(tokens(&[s]), None));
    assert_eq!(a, b);
    let names: Vec<String> = hf_tensors(&m).into_keys().collect();
    assert!(names.contains(&"model.layers.1.self_attn.k_proj.weight".to_string()));
    assert!(names.contains(&"lm_head.weight".to_string()));
    assert_eq!(
        hf_tensors(&m)["model.layers.0.self_attn.k_proj.weight"].shape,
        [16, 32]
    );
    assert!(path.join("tokenizer.json").exists());
}

#[test]
fn broken_checkpoints_give_errors() {
    let m = model();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt");
    checkpoint::save(&m, &path, None).unwrap();
    let w = path.join("model.safetensors");
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
    assert!(checkpoint::load::<B>(&path, &Default::default()).is_err());
    std::fs::write(&w, b"nonsense").unwrap();
    assert!(checkpoint::load::<B>(&path, &Default::default()).is_err());
    std::fs::write(path.join("config.json"), b"{").unwrap();
    assert!(checkpoint::load::<B>(&path, &Default::default()).is_err());
    assert!(checkpoint::load::<B>(&dir.path().join("missing"), &Default::default()).is_err());
}

#[test]
fn tied_embeddings_have_no_head_tensor_and_generate_runs() {
    let m: Llama<B> = Llama::init(
        &ModelConfig::preset("tiny").unwrap(),
        1,
        &Default::default(),
    );
    assert!(!hf_tensors(&m).contains_key("lm_head.weight"));
    let cfg = apr_model::generate::SampleConfig {
        temperature: 0.0,
        max_new_tokens: 5,
        eos: 2,
        seed: 0,
    };
    let g = m.generate(&[1, 10, 20], &cfg).unwrap();
    assert_eq!(g.tokens.len(), g.logprobs.len());
    assert!(g.finished || g.tokens.len() == 5);
    assert_eq!(m.generate(&[1, 10, 20], &cfg).unwrap(), g);
    assert!(m.generate(&[], &cfg).is_err());
}

/// A row cut back to a shared prefix and continued differently decodes as
/// a fresh row fed the new sequence (stale keys past the cut are never
/// seen), while the other row of the batch is untouched.
#[test]
fn truncated_row_continues_as_a_fresh_row() {
    let m = model();
    let (old, new) = (seq(16, 5), {
        let mut n = seq(16, 5)[..6].to_vec();
        n.extend(seq(7, 9));
        n
    });
    let other = seq(10, 3);
    let mut cache = KvCache::new(&config(), 2, 32, &Default::default());
    m.forward_cached(&mut cache, &[&old, &other], false)
        .unwrap();
    cache.truncate_row(0, 6).unwrap();
    assert_eq!(cache.lens(), &[6, 10]);
    let Logits::All(l) = m
        .forward_cached(&mut cache, &[&new[6..], &[]], true)
        .unwrap()
    else {
        panic!()
    };
    let got = host(l.slice([0..1, 0..7, 0..50]));
    let full = host(m.forward(tokens(std::slice::from_ref(&new)), None));
    assert!(max_diff(&got, &full[6 * 50..]) < TOL);
    // The untouched row continues as before.
    let Logits::Last(l) = m.forward_cached(&mut cache, &[&[], &[7]], false).unwrap() else {
        panic!()
    };
    let mut o = other.clone();
    o.push(7);
    let full = host(m.forward(tokens(std::slice::from_ref(&o)), None));
    assert!(max_diff(&host(l.slice([1..2, 0..50])), &full[10 * 50..]) < TOL);
}
