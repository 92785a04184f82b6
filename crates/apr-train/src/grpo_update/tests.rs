//! Tests of the GRPO objective, its batches and the reference reuse.

use super::*;
use burn::module::AutodiffModule;

fn seq(ids: &[u32], prompt_len: usize, adv: f32) -> Sequence {
    Sequence {
        ids: ids.to_vec(),
        prompt_len,
        old_logprobs: vec![-0.5; ids.len() - prompt_len],
        advantage: adv,
        seq_per_rollout: 1,
        pg_weight: 0.25,
        kl_weight: 0.5,
        ref_logprobs: None,
    }
}

#[test]
fn only_generated_tokens_carry_loss() {
    // Row 0: prompt [1, 7, 8], generated [9, 2]; row 1: prompt [1],
    // generated [5]. Positions predict the next token.
    let a = seq(&[1, 7, 8, 9, 2], 3, 1.5);
    let b = seq(&[1, 5], 1, -1.0);
    let m = micro_batch(&[&a, &b]);
    assert_eq!((m.rows, m.len), (2, 4));
    let p = PAD_ID as i64;
    assert_eq!(m.inputs, vec![1, 7, 8, 9, 1, p, p, p]);
    assert_eq!(m.targets, vec![7, 8, 9, 2, 5, p, p, p]);
    // Targets 9 and 2 (positions 2, 3) of row 0 and 5 (position 0) of
    // row 1 are generated; the prompt's 7 and 8 are not.
    assert_eq!(m.pg_weight, vec![0.0, 0.0, 0.25, 0.25, 0.25, 0.0, 0.0, 0.0]);
    assert_eq!(m.kl_weight, vec![0.0, 0.0, 0.5, 0.5, 0.5, 0.0, 0.0, 0.0]);
    assert_eq!(m.live, vec![0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
    assert_eq!(m.adv, vec![0.0, 0.0, 1.5, 1.5, -1.0, 0.0, 0.0, 0.0]);
    assert_eq!(m.old, vec![0.0, 0.0, -0.5, -0.5, -0.5, 0.0, 0.0, 0.0]);
    assert_eq!(m.reference, None);
    // Reference values land on the generated targets; one sequence
    // without them leaves the batch without a reference.
    let (mut a, mut b) = (a, b);
    a.ref_logprobs = Some(vec![-1.0, -2.0]);
    assert_eq!(micro_batch(&[&a, &b]).reference, None);
    b.ref_logprobs = Some(vec![-3.0]);
    let r = micro_batch(&[&a, &b]).reference;
    assert_eq!(r, Some(vec![0.0, 0.0, -1.0, -2.0, -3.0, 0.0, 0.0, 0.0]));
}

/// Rollout A (advantage +1) gave one sequence, rollout B (-1) three.
fn two_rollouts() -> Vec<Sequence> {
    let mut v = vec![seq(&[1, 7, 8, 9], 2, 1.0)];
    v[0].seq_per_rollout = 1;
    for ids in [&[1, 5, 6][..], &[1, 7, 5, 6, 9], &[1, 9]] {
        let mut s = seq(ids, 1, -1.0);
        s.seq_per_rollout = 3;
        v.push(s);
    }
    v
}

#[test]
fn weights_follow_the_reference() {
    let mut s = two_rollouts();
    set_weights(&mut s, LossAggregation::SequenceMean);
    // Policy 1 / (len * seq_per_rollout * 4), KL 1 / (len * 4).
    let w: Vec<(f32, f32)> = s.iter().map(|s| (s.pg_weight, s.kl_weight)).collect();
    assert_eq!(
        w,
        vec![
            (1.0 / 8.0, 1.0 / 8.0),
            (1.0 / 24.0, 1.0 / 8.0),
            (1.0 / 48.0, 1.0 / 16.0),
            (1.0 / 12.0, 1.0 / 4.0),
        ]
    );
    // Ratio 1: each token's PPO-clip loss is -A; per rollout the
    // policy terms cancel (-1 + 3 * 1/3), so the policy loss is 0. A
    // weight of 1 / (len * 4) alone would give (-1 + 3) / 4.
    let pg: f64 = s
        .iter()
        .flat_map(|s| {
            s.old_logprobs.iter().map(|lp| {
                let (l, _) = ppo_clip_token(*lp as f64, *lp as f64, s.advantage as f64, 0.2);
                l * s.pg_weight as f64
            })
        })
        .sum();
    assert!(pg.abs() < 1e-7, "{pg}");
    set_weights(&mut s, LossAggregation::TokenMean);
    // Both 1 / 9 generated tokens.
    let t = (1.0f64 / 9.0) as f32;
    assert!(s.iter().all(|s| (s.pg_weight, s.kl_weight) == (t, t)));
}

/// One update of the two-rollout batch whose old log-probabilities
/// come from the policy at logit scale `old_scale`, trained at `scale`.
fn update_from_own_logprobs(old_scale: f64, scale: f64) -> UpdateStats {
    type B = apr_model::CpuTrain;
    let policy: Llama<B> = crate::test_model::micro_llama();
    let mut s = two_rollouts();
    for q in &mut s {
        let b = micro_batch(&[&*q]);
        let lp = host(target_logprobs(&policy.valid(), &b, old_scale));
        q.old_logprobs = (0..q.old_logprobs.len())
            .map(|j| lp[q.prompt_len + j - 1])
            .collect();
    }
    set_weights(&mut s, LossAggregation::SequenceMean);
    let mut optim = crate::state::adamw::<B>(0.9, 0.999, 1e-8, 0.0);
    let settings = UpdateSettings {
        clip_eps: 0.2,
        kl_coef: 0.0,
        grad_clip: 1.0,
        micro_batch_tokens: 64,
        lr: 1e-3,
        logit_scale: scale,
    };
    update(policy, &mut optim, &s, &settings).1
}

#[test]
fn update_at_ratio_one_has_no_policy_loss_across_rollouts() {
    // Old log-probabilities from the policy itself, at temperature 1
    // and at the tempered scale 1 / 0.5: ratio 1 either way.
    for scale in [1.0, 2.0] {
        let st = update_from_own_logprobs(scale, scale);
        assert!(st.loss.abs() < 1e-5, "{st:?}");
        assert!((st.ratio - 1.0).abs() < 1e-5, "{st:?}");
        assert_eq!(st.clip_fraction, 0.0);
    }
    // Recorded at temperature 1, trained tempered: not the same policy.
    let st = update_from_own_logprobs(1.0, 2.0);
    assert!((st.ratio - 1.0).abs() > 1e-3, "{st:?}");
}

#[test]
fn reference_filled_once_gives_the_kl_of_its_model() {
    type B = apr_model::CpuTrain;
    let policy: Llama<B> = crate::test_model::micro_llama();
    let mut s = two_rollouts();
    // Each sequence alone, then all packed in one micro-batch: the
    // packed rows must read their own positions.
    let alone: Vec<Vec<f32>> = s
        .iter()
        .map(|q| {
            let mut one = vec![q.clone()];
            fill_reference(&policy.valid(), &mut one, 1, 1.0);
            one[0].ref_logprobs.clone().unwrap()
        })
        .collect();
    fill_reference(&policy.valid(), &mut s, 64, 1.0);
    for (q, a) in s.iter().zip(&alone) {
        let r = q.ref_logprobs.as_ref().unwrap();
        assert_eq!(r.len(), q.old_logprobs.len());
        assert!(
            r.iter().zip(a).all(|(x, y)| (x - y).abs() < 1e-5),
            "{r:?} {a:?}"
        );
    }
    // The reference is the policy: k3 KL 0. Shifted by 0.5 nats: the
    // mean of exp(0.5) - 0.5 - 1 over tokens.
    set_weights(&mut s, LossAggregation::SequenceMean);
    let settings = UpdateSettings {
        clip_eps: 0.2,
        kl_coef: 0.1,
        grad_clip: 1.0,
        micro_batch_tokens: 64,
        lr: 0.0,
        logit_scale: 1.0,
    };
    let mut optim = crate::state::adamw::<B>(0.9, 0.999, 1e-8, 0.0);
    let st = update(policy.clone(), &mut optim, &s, &settings).1;
    assert!(st.kl.abs() < 1e-6, "{st:?}");
    for q in &mut s {
        for v in q.ref_logprobs.as_mut().unwrap() {
            *v += 0.5;
        }
    }
    let st = update(policy.clone(), &mut optim, &s, &settings).1;
    let want = 0.5f64.exp() - 1.5;
    assert!((st.kl - want).abs() < 1e-4, "{} vs {want}", st.kl);
    // Without `kl_coef` the reference is ignored.
    let off = UpdateSettings {
        kl_coef: 0.0,
        ..settings
    };
    assert_eq!(update(policy, &mut optim, &s, &off).1.kl, 0.0);
}

#[test]
fn packing_respects_the_token_budget() {
    let s: Vec<Sequence> = [5, 3, 9, 4]
        .iter()
        .map(|&n| seq(&vec![1; n], 1, 0.0))
        .collect();
    // Sorted by length 3, 4, 5, 9: (3, 4) pads to 8 <= 10; adding 5
    // would pad to 15.
    assert_eq!(pack(&s, 10), vec![vec![1, 3], vec![0], vec![2]]);
    assert_eq!(pack(&s, 100), vec![vec![1, 3, 0, 2]]);
}
