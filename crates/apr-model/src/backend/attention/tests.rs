use super::*;
use crate::backend::{Cpu, CpuTrain};
use crate::test_util::{values, worst};
use burn::tensor::module::attention;

fn rand4(seed: u64, shape: [usize; 4]) -> Vec<f32> {
    let mut rng = crate::init::SplitMix::new(seed);
    rng.normal_vec(shape.iter().product(), 1.0)
}

#[test]
fn bias_is_causal_with_offset() {
    let b = causal_bias::<Cpu>(2, 3, &Default::default());
    let v: Vec<f32> = b.into_data().to_vec().unwrap();
    let n = f32::NEG_INFINITY;
    assert_eq!(v, vec![0.0, 0.0, n, 0.0, 0.0, 0.0]);
}

/// Without autodiff the CPU backend runs the host kernel's forward: the
/// output of flex's own attention, to 1e-5.
#[test]
fn the_cpu_forward_without_gradients_is_flex_attention() {
    let dev = Default::default();
    let shape = [2, 3, 45, 16];
    let mk = |seed| Tensor::<Cpu, 4>::from_data(TensorData::new(rand4(seed, shape), shape), &dev);
    let (q, k, v) = (mk(5), mk(6), mk(7));
    let ours = wrap::<Cpu>(Cpu::causal_attention(
        unwrap(q.clone()),
        unwrap(k.clone()),
        unwrap(v.clone()),
    ));
    let theirs = wrap::<Cpu>(backend_causal_attention::<Cpu>(
        unwrap(q),
        unwrap(k),
        unwrap(v),
    ));
    let worst = worst(&values(ours), &values(theirs));
    assert!(worst < 1e-5, "max |diff| {worst}");
}

/// Output and gradients equal those of burn's generic attention
/// differentiated by autodiff (the fallback), to 1e-4.
#[test]
fn matches_burn_fallback_forward_and_backward() {
    let dev = Default::default();
    let shape = [2, 3, 37, 8];
    let mk = |seed| {
        Tensor::<CpuTrain, 4>::from_data(TensorData::new(rand4(seed, shape), shape), &dev)
            .require_grad()
    };
    let (q, k, v) = (mk(1), mk(2), mk(3));
    let w = Tensor::<CpuTrain, 4>::from_data(TensorData::new(rand4(4, shape), shape), &dev);
    let ours = wrap::<CpuTrain>(CpuTrain::causal_attention(
        unwrap(q.clone()),
        unwrap(k.clone()),
        unwrap(v.clone()),
    ));
    let opts = AttentionModuleOptions {
        scale: None,
        softcap: None,
        is_causal: true,
    };
    let theirs = attention(q.clone(), k.clone(), v.clone(), None, None, opts);
    let close = |a: Tensor<Cpu, 4>, b: Tensor<Cpu, 4>| {
        let worst = worst(&values(a), &values(b));
        assert!(worst < 1e-4, "max difference {worst}");
    };
    close(ours.clone().inner(), theirs.clone().inner());
    let g1 = (ours * w.clone()).sum().backward();
    let g2 = (theirs * w).sum().backward();
    for x in [&q, &k, &v] {
        close(x.grad(&g1).unwrap(), x.grad(&g2).unwrap());
    }
}

/// The burn-ops form (the CUDA path) agrees with the host kernels.
#[test]
fn dense_form_matches_the_host_kernels() {
    let dev = Default::default();
    let [b, h, t, d] = [2, 3, 29, 16];
    let n = b * h * t * d;
    let vals: Vec<Vec<f32>> = (1..=4).map(|s| rand4(s, [b, h, t, d])).collect();
    let mk = |v: &Vec<f32>| {
        unwrap(Tensor::<Cpu, 4>::from_data(
            TensorData::new(v.clone(), [b, h, t, d]),
            &dev,
        ))
    };
    let (q, k, v, w) = (mk(&vals[0]), mk(&vals[1]), mk(&vals[2]), mk(&vals[3]));
    let p = probabilities(wrap::<Cpu>(q.clone()), wrap(k.clone()));
    let o = unwrap(p.clone().matmul(wrap(v.clone())));
    let dense = attention_backward::<Cpu>(q, k, v, o.clone(), unwrap(p), w);
    let s = CausalShape::of([b, h, t, d]);
    let (ho, lse) = host_causal::forward(s, &vals[0], &vals[1], &vals[2]);
    let host = host_causal::backward(s, &vals[0], &vals[1], &vals[2], &ho, &lse, &vals[3]);
    let worst = |a: FloatTensor<Cpu>, b: &[f32]| {
        let a = values(wrap::<Cpu>(a));
        assert_eq!(a.len(), n);
        worst(&a, b)
    };
    assert!(worst(o, &ho) < 1e-5);
    for (g, hg) in dense.into_iter().zip(&host) {
        assert!(worst(g, hg) < 1e-4);
    }
}
