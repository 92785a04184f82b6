use super::*;

/// Dense reference in f64: output and the three gradients of
/// `sum(o * w)`.
#[allow(clippy::type_complexity)]
fn dense(s: CausalShape, q: &[f32], k: &[f32], v: &[f32], w: &[f32]) -> (Vec<f64>, [Vec<f64>; 3]) {
    let (t, d) = (s.t, s.d);
    let scale = 1.0 / (d as f64).sqrt();
    let n = q.len();
    let (mut o, mut dq, mut dk, mut dv) = (vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let at = |b: usize, i: usize, c: usize| (b * t + i) * d + c;
    for b in 0..s.blocks {
        for i in 0..t {
            let sc: Vec<f64> = (0..=i)
                .map(|j| {
                    (0..d)
                        .map(|c| q[at(b, i, c)] as f64 * k[at(b, j, c)] as f64)
                        .sum::<f64>()
                        * scale
                })
                .collect();
            let m = sc.iter().cloned().fold(f64::MIN, f64::max);
            let z: f64 = sc.iter().map(|x| (x - m).exp()).sum();
            let p: Vec<f64> = sc.iter().map(|x| (x - m).exp() / z).collect();
            for c in 0..d {
                o[at(b, i, c)] = (0..=i).map(|j| p[j] * v[at(b, j, c)] as f64).sum();
            }
            // dO = w; dp_j = w_i·v_j; ds_j = p_j (dp_j - sum_j p_j dp_j).
            let dp: Vec<f64> = (0..=i)
                .map(|j| {
                    (0..d)
                        .map(|c| w[at(b, i, c)] as f64 * v[at(b, j, c)] as f64)
                        .sum()
                })
                .collect();
            let mean: f64 = (0..=i).map(|j| p[j] * dp[j]).sum();
            for j in 0..=i {
                let ds = p[j] * (dp[j] - mean) * scale;
                for c in 0..d {
                    dq[at(b, i, c)] += ds * k[at(b, j, c)] as f64;
                    dk[at(b, j, c)] += ds * q[at(b, i, c)] as f64;
                    dv[at(b, j, c)] += p[j] * w[at(b, i, c)] as f64;
                }
            }
        }
    }
    (o, [dq, dk, dv])
}

fn close(ours: &[f32], want: &[f64], tol: f64) {
    let worst = ours
        .iter()
        .zip(want)
        .map(|(&a, &b)| (a as f64 - b).abs())
        .fold(0.0, f64::max);
    assert!(worst < tol, "max difference {worst}");
}

#[test]
fn two_positions_by_hand() {
    // d 1 (scale 1): q = k = (1, 1): s = [[1], [1, 1]], so query 1
    // averages v = (2, 4): o = (2, 3); lse = (1, 1 + ln 2).
    let s = CausalShape::of([1, 1, 2, 1]);
    let (o, lse) = forward(s, &[1.0, 1.0], &[1.0, 1.0], &[2.0, 4.0]);
    close(&o, &[2.0, 3.0], 1e-6);
    close(&lse, &[1.0, 1.0 + 2f64.ln()], 1e-6);
    // With dO = (0, 1): dv = (1/2, 1/2); ds_1 = p (dp - D) = 1/2 (2 - 3) and
    // 1/2 (4 - 3): dq_1 = -1/2 + 1/2 = 0, dk = (-1/2, 1/2), dq_0 = 0.
    let [dq, dk, dv] = backward(
        s,
        &[1.0, 1.0],
        &[1.0, 1.0],
        &[2.0, 4.0],
        &o,
        &lse,
        &[0.0, 1.0],
    );
    close(&dv, &[0.5, 0.5], 1e-6);
    close(&dk, &[-0.5, 0.5], 1e-6);
    close(&dq, &[0.0, 0.0], 1e-6);
}

/// Both forms against the f64 reference. Head widths 32, 16 and 64
/// take the tiled form (on machines with 8-lane vectors); lengths that
/// are not multiples of the tiles (6 queries, 16 keys, 24-query blocks)
/// leave partial tiles everywhere.
#[test]
fn matches_the_dense_form_in_f64() {
    let shapes = [
        (3, 37, 8),
        (2, 19, 32),
        (1, 70, 13),
        (2, 53, 16),
        (1, 100, 64),
        (1, 1, 32),
        (2, 24, 32),
    ];
    for form in [Form::Tiled, Form::Pairwise] {
        for (blocks, t, d) in shapes {
            let s = CausalShape::of([1, blocks, t, d]);
            let mut rng = crate::rng::SplitMix::new(t as u64);
            let n = blocks * t * d;
            let (q, k, v, w) = (
                rng.normal_vec(n, 1.0),
                rng.normal_vec(n, 1.0),
                rng.normal_vec(n, 1.0),
                rng.normal_vec(n, 1.0),
            );
            let (o, lse) = forward_in(form, s, &q, &k, &v);
            let (want_o, want) = dense(s, &q, &k, &v, &w);
            close(&o, &want_o, 1e-5);
            let got = backward_in(form, s, &q, &k, &v, &o, &lse, &w);
            for (g, w) in got.iter().zip(&want) {
                close(g, w, 1e-4);
            }
        }
    }
}

/// The two forms agree to rounding, and the tiled form's log-sum-exp
/// is the pairwise one's (the same softmax over the same scores, up to
/// the order of the multiply-adds).
#[test]
fn tiled_and_pairwise_forms_agree() {
    let s = CausalShape::of([1, 2, 61, 32]);
    let mut rng = crate::rng::SplitMix::new(7);
    let n = s.blocks * s.t * s.d;
    let x: Vec<Vec<f32>> = (0..4).map(|_| rng.normal_vec(n, 1.0)).collect();
    let (o1, l1) = forward_in(Form::Tiled, s, &x[0], &x[1], &x[2]);
    let (o2, l2) = forward_in(Form::Pairwise, s, &x[0], &x[1], &x[2]);
    let as64 = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    close(&o1, &as64(&o2), 1e-5);
    close(&l1, &as64(&l2), 1e-5);
    let g1 = backward_in(Form::Tiled, s, &x[0], &x[1], &x[2], &o1, &l1, &x[3]);
    let g2 = backward_in(Form::Pairwise, s, &x[0], &x[1], &x[2], &o2, &l2, &x[3]);
    for (a, b) in g1.iter().zip(&g2) {
        close(a, &as64(b), 1e-4);
    }
}

/// `[batch, t, heads, d]` inputs give the `[batch, heads, t, d]` results
/// reordered, in both forms (the pairwise one reorders its inputs; the
/// tiled one reads the rows in place); the log-sum-exps are per block
/// either way.
#[test]
fn token_major_inputs_give_the_same_results() {
    let (b, h, t) = (2, 3, 29);
    for d in [32, 8] {
        let hm = CausalShape::of([b, h, t, d]);
        let tm = CausalShape::token_major([b, t, h, d]);
        let mut rng = crate::rng::SplitMix::new(d as u64);
        let n = b * h * t * d;
        let x: Vec<Vec<f32>> = (0..4).map(|_| rng.normal_vec(n, 1.0)).collect();
        // x given token-major; the same values head-major.
        let hx: Vec<Vec<f32>> = x.iter().map(|x| tm.reorder(x, false)).collect();
        // By hand: row (b 1, t 5, head 2) is block 1 * 3 + 2's row 5.
        assert_eq!(
            &hx[0][((3 + 2) * t + 5) * d..][..d],
            &x[0][((t + 5) * h + 2) * d..][..d]
        );
        assert_eq!(tm.reorder(&hx[0], true), x[0]);
        for form in [Form::Tiled, Form::Pairwise] {
            let (o, lse) = forward_in(form, tm, &x[0], &x[1], &x[2]);
            let (ho, hlse) = forward_in(form, hm, &hx[0], &hx[1], &hx[2]);
            assert_eq!(tm.reorder(&o, false), ho);
            assert_eq!(lse, hlse);
            let g = backward_in(form, tm, &x[0], &x[1], &x[2], &o, &lse, &x[3]);
            let hg = backward_in(form, hm, &hx[0], &hx[1], &hx[2], &ho, &hlse, &hx[3]);
            for (g, hg) in g.iter().zip(&hg) {
                assert_eq!(&tm.reorder(g, false), hg);
            }
        }
    }
}
