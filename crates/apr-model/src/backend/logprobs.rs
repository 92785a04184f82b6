//! Log-probabilities of target tokens, `log_softmax(logits)[target]`, as
//! one operation ([`token_logprobs`]): the loss of SFT and the policy
//! terms of GRPO.
//!
//! Through burn's ops this is a log-softmax over the whole vocabulary (a
//! max, a subtraction, an exponential that flex computes one element at a
//! time, a sum, a log) and a gather, each a node under autodiff with its
//! own `[rows, vocab]` tensor. On the CPU
//! ([`AprBackend::HOST_LOGPROBS_BACKWARD`]) it instead runs on host
//! kernels with the vector exponential, as one autodiff node that keeps
//! the logits and each row's log-sum-exp:
//!
//! ```text
//! lse_r = log sum_j e^x_rj,  y_r = x_r[t_r] - lse_r
//! dx_rj = dy_r ([j = t_r] - e^(x_rj - lse_r))
//! ```
//!
//! Other backends (CUDA) keep burn's ops.

use super::AprBackend;
use crate::interop::{host_values, primitive_from_values, primitive_values};
use apr_kernels::math::exp_nonpositive;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::Autodiff;
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::ops::{FloatTensor, IntTensor};
use burn::tensor::{DType, Int, Shape, Tensor, TensorPrimitive};
use pulp::{Arch, Simd, WithSimd};
use rayon::prelude::*;
use std::sync::Arc;

/// `log_softmax(logits, 2).gather(2, targets)`: `logits` `[b, t, vocab]`,
/// `targets` `[b, t, 1]`, the result `[b, t, 1]`. Inputs the host kernel
/// does not take (not f32, a target outside the vocabulary) go through
/// burn's ops.
pub fn token_logprobs<B: AprBackend>(
    logits: Tensor<B, 3>,
    targets: Tensor<B, 3, Int>,
) -> Tensor<B, 3> {
    let out = B::token_logprobs(logits.into_primitive().tensor(), targets.into_primitive());
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

/// [`token_logprobs`] with the backend's own ops.
pub(crate) fn burn_logprobs<B: Backend>(
    logits: FloatTensor<B>,
    targets: IntTensor<B>,
) -> FloatTensor<B> {
    let logits = Tensor::<B, 3>::from_primitive(TensorPrimitive::Float(logits));
    let targets = Tensor::<B, 3, Int>::from_primitive(targets);
    log_softmax(logits, 2)
        .gather(2, targets)
        .into_primitive()
        .tensor()
}

/// The host inputs: dims `[b, t, vocab]`, logits, and targets as row
/// indices, when the logits are f32 and every target is in the vocabulary.
fn host_inputs<B: Backend>(
    logits: &FloatTensor<B>,
    targets: &IntTensor<B>,
) -> Option<([usize; 3], Vec<f32>, Vec<usize>)> {
    let x = Tensor::<B, 3>::from_primitive(TensorPrimitive::Float(logits.clone()));
    let t = Tensor::<B, 3, Int>::from_primitive(targets.clone());
    let dims = x.dims();
    if x.dtype() != DType::F32 || t.dims() != [dims[0], dims[1], 1] {
        return None;
    }
    let t: Vec<i64> = t.into_data().convert::<i64>().to_vec().ok()?;
    let v = dims[2] as i64;
    let t: Option<Vec<usize>> = t
        .into_iter()
        .map(|j| (0..v).contains(&j).then_some(j as usize))
        .collect();
    Some((dims, host_values(x).ok()?, t?))
}

fn from_host<B: Backend>(v: Vec<f32>, dims: [usize; 3], device: &B::Device) -> FloatTensor<B> {
    primitive_from_values::<B>(v, Shape::new(dims), device)
}

/// Each row's target log-probability and log-sum-exp (`x` `[rows, vocab]`).
fn host_forward(x: &[f32], vocab: usize, targets: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let rows = targets.len();
    let (mut y, mut lse) = (vec![0.0f32; rows], vec![0.0f32; rows]);
    y.par_iter_mut()
        .zip(lse.par_iter_mut())
        .zip(x.par_chunks_exact(vocab))
        .zip(targets.par_iter())
        .for_each(|(((y, l), row), &t)| {
            *l = Arch::new().dispatch(LogSumExp(row));
            *y = row[t] - *l;
        });
    (y, lse)
}

/// `log sum_j e^x_j` of one row (not empty).
struct LogSumExp<'a>(&'a [f32]);

impl WithSimd for LogSumExp<'_> {
    type Output = f32;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> f32 {
        let (xv, xt) = S::as_simd_f32s(self.0);
        let mut mv = simd.splat_f32s(f32::NEG_INFINITY);
        for &x in xv {
            mv = simd.max_f32s(mv, x);
        }
        let max = xt.iter().fold(simd.reduce_max_f32s(mv), |m, &x| m.max(x));
        let m = simd.splat_f32s(max);
        let mut sv = simd.splat_f32s(0.0);
        for &x in xv {
            sv = simd.add_f32s(sv, exp_nonpositive::<S>(simd, simd.sub_f32s(x, m)));
        }
        let sum = xt
            .iter()
            .fold(simd.reduce_sum_f32s(sv), |s, &x| s + (x - max).exp());
        max + sum.ln()
    }
}

/// `dx` (`[rows, vocab]`) from the rows' gradients `dy`.
fn host_backward(x: &[f32], vocab: usize, targets: &[usize], lse: &[f32], dy: &[f32]) -> Vec<f32> {
    let mut dx = vec![0.0f32; x.len()];
    dx.par_chunks_exact_mut(vocab)
        .zip(x.par_chunks_exact(vocab))
        .zip(targets.par_iter().zip(lse.par_iter()).zip(dy.par_iter()))
        .for_each(|((dx, x), ((&t, &l), &g))| {
            Arch::new().dispatch(SoftmaxGrad { dx, x, lse: l, g });
            dx[t] += g;
        });
    dx
}

/// `dx_j = -g e^(x_j - lse)`.
struct SoftmaxGrad<'a> {
    dx: &'a mut [f32],
    x: &'a [f32],
    lse: f32,
    g: f32,
}

impl WithSimd for SoftmaxGrad<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let SoftmaxGrad { dx, x, lse, g } = self;
        let (dv, dt) = S::as_mut_simd_f32s(dx);
        let (xv, xt) = S::as_simd_f32s(x);
        let (l, ng, zero) = (
            simd.splat_f32s(lse),
            simd.splat_f32s(-g),
            simd.splat_f32s(0.0),
        );
        for (d, &x) in dv.iter_mut().zip(xv) {
            let e = simd.min_f32s(simd.sub_f32s(x, l), zero);
            *d = simd.mul_f32s(ng, exp_nonpositive::<S>(simd, e));
        }
        for (d, &x) in dt.iter_mut().zip(xt) {
            *d = -g * (x - lse).min(0.0).exp();
        }
    }
}

/// The host forward on the CPU backend, else burn's ops.
pub(crate) fn flex_logprobs<B: Backend>(
    logits: FloatTensor<B>,
    targets: IntTensor<B>,
) -> FloatTensor<B> {
    match host_inputs::<B>(&logits, &targets) {
        Some(([b, t, v], x, tg)) => {
            let device = B::float_device(&logits);
            let (y, _) = host_forward(&x, v, &tg);
            from_host::<B>(y, [b, t, 1], &device)
        }
        None => burn_logprobs::<B>(logits, targets),
    }
}

#[derive(Debug)]
struct TokenLogprobs;

/// What the host backward keeps.
#[derive(Debug)]
struct Saved<B: Backend> {
    dims: [usize; 3],
    device: B::Device,
    x: Vec<f32>,
    targets: Vec<usize>,
    lse: Vec<f32>,
}

impl<B: Backend> Backward<B, 1> for TokenLogprobs {
    type State = Arc<Saved<B>>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let dy = grads.consume::<B>(&ops.node);
        let s = ops.state;
        let Some(node) = node else { return };
        let dy = primitive_values::<B>(&dy).unwrap_or_else(|| vec![0.0; s.targets.len()]);
        let dx = host_backward(&s.x, s.dims[2], &s.targets, &s.lse, &dy);
        grads.register::<B>(node.id, from_host::<B>(dx, s.dims, &s.device));
    }
}

/// [`token_logprobs`] under autodiff: one node with the host backward where
/// the inner backend is the CPU, else burn's ops (tracked as usual).
pub(crate) fn autodiff_logprobs<B: AprBackend, C: CheckpointStrategy>(
    logits: FloatTensor<Autodiff<B, C>>,
    targets: IntTensor<Autodiff<B, C>>,
) -> FloatTensor<Autodiff<B, C>> {
    if !B::HOST_LOGPROBS_BACKWARD {
        return burn_logprobs::<Autodiff<B, C>>(logits, targets);
    }
    let Some((dims, x, tg)) = host_inputs::<B>(&logits.primitive, &targets) else {
        return burn_logprobs::<Autodiff<B, C>>(logits, targets);
    };
    let device = B::float_device(&logits.primitive);
    let (y, lse) = host_forward(&x, dims[2], &tg);
    let out = from_host::<B>(y, [dims[0], dims[1], 1], &device);
    match TokenLogprobs
        .prepare::<C>([logits.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let saved = Saved {
                dims,
                device,
                x,
                targets: tg,
                lse,
            };
            prep.finish(Arc::new(saved), out)
        }
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Cpu, CpuTrain};
    use crate::test_util::{values, worst};
    use burn::tensor::TensorData;

    #[test]
    fn two_classes_by_hand() {
        // logits (0, ln 3): p = (1/4, 3/4); targets 1 and 0.
        let dev = Default::default();
        let x = Tensor::<Cpu, 3>::from_data(
            TensorData::new(vec![0.0f32, 3f32.ln(), 0.0, 3f32.ln()], [1, 2, 2]),
            &dev,
        );
        let t = Tensor::<Cpu, 3, Int>::from_data(TensorData::new(vec![1i64, 0], [1, 2, 1]), &dev);
        let y = values(token_logprobs(x, t));
        assert!((y[0] - 0.75f32.ln()).abs() < 1e-6);
        assert!((y[1] - 0.25f32.ln()).abs() < 1e-6);
    }

    /// With gradients, the host op's values and the gradient of
    /// `sum(y * w)` equal burn's log-softmax and gather to 1e-5; without
    /// gradients too. A vocabulary of 37 leaves a scalar tail.
    #[test]
    fn host_op_matches_burn_ops_values_and_gradients() {
        let dev = Default::default();
        let (b, t, v) = (2, 5, 37);
        let mut rng = crate::init::SplitMix::new(3);
        let x0 = rng.normal_vec(b * t * v, 3.0);
        let w0 = rng.normal_vec(b * t, 1.0);
        let tg: Vec<i64> = (0..b * t).map(|i| (i * 7 % v) as i64).collect();
        let run = |host: bool| {
            let x = Tensor::<CpuTrain, 3>::from_data(TensorData::new(x0.clone(), [b, t, v]), &dev)
                .require_grad();
            let tgt =
                Tensor::<CpuTrain, 3, Int>::from_data(TensorData::new(tg.clone(), [b, t, 1]), &dev);
            let w = Tensor::<CpuTrain, 3>::from_data(TensorData::new(w0.clone(), [b, t, 1]), &dev);
            let y = if host {
                token_logprobs(x.clone(), tgt)
            } else {
                let p = burn_logprobs::<CpuTrain>(
                    x.clone().into_primitive().tensor(),
                    tgt.into_primitive(),
                );
                Tensor::from_primitive(TensorPrimitive::Float(p))
            };
            let grads = (y.clone() * w).sum().backward();
            (values(y.inner()), values(x.grad(&grads).unwrap()))
        };
        let (y1, g1) = run(true);
        let (y2, g2) = run(false);
        assert!(worst(&y1, &y2) < 1e-5);
        assert!(worst(&g1, &g2) < 1e-5);
        // Each row's gradient sums to zero (softmax minus one-hot).
        for row in g1.chunks(v) {
            assert!(row.iter().sum::<f32>().abs() < 1e-5);
        }
        let x = Tensor::<Cpu, 3>::from_data(TensorData::new(x0.clone(), [b, t, v]), &dev);
        let tgt = Tensor::<Cpu, 3, Int>::from_data(TensorData::new(tg.clone(), [b, t, 1]), &dev);
        assert!(worst(&values(token_logprobs(x, tgt)), &y2) < 1e-5);
    }
}
