//! The model's two forward paths and the cache.

mod common;

use apr_model::checkpoint::hf_tensors;
use apr_model::{KvCache, Llama, Logits, ModelConfig};
use common::*;

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
