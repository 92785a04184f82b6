//! The SwiGLU gate, `h = silu(g) * u`, as one operation
//! ([`AprBackend::swiglu`]).
//!
//! Through burn's ops the gate is a sigmoid, two products and, under
//! autodiff, a node for each with its own saved tensors; flex computes the
//! sigmoid's exponential one element at a time (`libm`'s `expf`). On the
//! CPU ([`AprBackend::HOST_SWIGLU_BACKWARD`]) the gate instead runs on
//! host kernels with the vector exponential (`host_math::silu_mul`
//! forward, `host_math::silu_mul_backward` backward) as one autodiff node
//! that keeps `g` and `u`:
//!
//! ```text
//! s = 1 / (1 + e^-g),  h = g s u
//! du = dh g s,  dg = dh u s (1 + g (1 - s))
//! ```
//!
//! Other backends (CUDA) keep burn's ops.

use super::AprBackend;
use crate::interop::{primitive_from_values, primitive_values};
use apr_kernels::math::{silu_mul, silu_mul_backward};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Shape, TensorMetadata};
use std::sync::Arc;

/// `silu(g) * u` with the backend's own ops (`g * sigmoid(g) * u`).
pub(crate) fn burn_swiglu<B: Backend>(g: FloatTensor<B>, u: FloatTensor<B>) -> FloatTensor<B> {
    let s = B::sigmoid(g.clone());
    B::float_mul(B::float_mul(g, s), u)
}

/// The host values of `g` and `u` when both are f32 of one shape.
fn host_inputs<B: Backend>(
    g: &FloatTensor<B>,
    u: &FloatTensor<B>,
) -> Option<(Shape, Vec<f32>, Vec<f32>)> {
    let shape = g.shape();
    if g.dtype() != DType::F32 || u.dtype() != DType::F32 || u.shape() != shape {
        return None;
    }
    Some((shape, primitive_values::<B>(g)?, primitive_values::<B>(u)?))
}

/// The host forward pass on the CPU backend, else burn's ops.
pub(crate) fn flex_swiglu<B: Backend>(g: FloatTensor<B>, u: FloatTensor<B>) -> FloatTensor<B> {
    match host_inputs::<B>(&g, &u) {
        Some((shape, hg, hu)) => {
            let device = B::float_device(&g);
            let mut h = vec![0.0f32; hg.len()];
            silu_mul(&hg, &hu, &mut h);
            primitive_from_values::<B>(h, shape, &device)
        }
        None => burn_swiglu::<B>(g, u),
    }
}

#[derive(Debug)]
struct SwiGlu;

/// What the host backward keeps: the inputs' values.
#[derive(Debug)]
struct Saved<B: Backend> {
    shape: Shape,
    device: B::Device,
    g: Vec<f32>,
    u: Vec<f32>,
}

impl<B: Backend> Backward<B, 2> for SwiGlu {
    type State = Arc<Saved<B>>;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_g, node_u] = ops.parents;
        let dh = grads.consume::<B>(&ops.node);
        let s = ops.state;
        let dh = primitive_values::<B>(&dh).unwrap_or_else(|| vec![0.0; s.g.len()]);
        let (mut dg, mut du) = (vec![0.0f32; s.g.len()], vec![0.0f32; s.g.len()]);
        silu_mul_backward(&s.g, &s.u, &dh, &mut dg, &mut du);
        for (node, d) in [(node_g, dg), (node_u, du)] {
            if let Some(node) = node {
                let d = primitive_from_values::<B>(d, s.shape.clone(), &s.device);
                grads.register::<B>(node.id, d);
            }
        }
    }
}

/// [`AprBackend::swiglu`] under autodiff: one node with the host backward
/// where the inner backend is the CPU and the inputs are f32, else burn's
/// ops (each tracked by autodiff as usual).
pub(crate) fn autodiff_swiglu<B: AprBackend, C: CheckpointStrategy>(
    g: FloatTensor<Autodiff<B, C>>,
    u: FloatTensor<Autodiff<B, C>>,
) -> FloatTensor<Autodiff<B, C>> {
    if !B::HOST_SWIGLU_BACKWARD {
        return burn_swiglu::<Autodiff<B, C>>(g, u);
    }
    let Some((shape, hg, hu)) = host_inputs::<B>(&g.primitive, &u.primitive) else {
        return burn_swiglu::<Autodiff<B, C>>(g, u);
    };
    let device = B::float_device(&g.primitive);
    let mut h = vec![0.0f32; hg.len()];
    silu_mul(&hg, &hu, &mut h);
    let out = primitive_from_values::<B>(h, shape.clone(), &device);
    let nodes = [g.node.clone(), u.node.clone()];
    match SwiGlu.prepare::<C>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let saved = Saved {
                shape,
                device,
                g: hg,
                u: hu,
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
    use burn::tensor::{Tensor, TensorData, TensorPrimitive};

    /// On the CPU with gradients: the host op's output and the gradients of
    /// `sum(h * w)` equal burn's composite ops' to 1e-5; without gradients
    /// the host forward equals them too. Covers both signs of `g`, a
    /// length that is not a multiple of the vector width (3 x 5 x 7).
    #[test]
    fn host_gate_matches_burn_ops_values_and_gradients() {
        let dev = Default::default();
        let shape = [3, 5, 7];
        let mut rng = crate::init::SplitMix::new(11);
        let n = 3 * 5 * 7;
        let (g0, u0, w0) = (
            rng.normal_vec(n, 2.0),
            rng.normal_vec(n, 1.0),
            rng.normal_vec(n, 1.0),
        );
        let run = |host: bool| {
            let mk = |v: &Vec<f32>| {
                Tensor::<CpuTrain, 3>::from_data(TensorData::new(v.clone(), shape), &dev)
                    .require_grad()
            };
            let (g, u) = (mk(&g0), mk(&u0));
            let w = Tensor::<CpuTrain, 3>::from_data(TensorData::new(w0.clone(), shape), &dev);
            let (gp, up) = (
                g.clone().into_primitive().tensor(),
                u.clone().into_primitive().tensor(),
            );
            let h = if host {
                CpuTrain::swiglu(gp, up)
            } else {
                burn_swiglu::<CpuTrain>(gp, up)
            };
            let h = Tensor::<CpuTrain, 3>::from_primitive(TensorPrimitive::Float(h));
            let grads = (h.clone() * w).sum().backward();
            let (dg, du) = (g.grad(&grads).unwrap(), u.grad(&grads).unwrap());
            (values(h.inner()), values(dg), values(du))
        };
        let (h1, dg1, du1) = run(true);
        let (h2, dg2, du2) = run(false);
        assert!(worst(&h1, &h2) < 1e-5);
        assert!(worst(&dg1, &dg2) < 1e-5);
        assert!(worst(&du1, &du2) < 1e-5);
        // By hand at one element: dh = w, du = w silu(g).
        let silu = g0[0] / (1.0 + (-g0[0]).exp());
        assert!((du1[0] - w0[0] * silu).abs() < 1e-5);
        // Without autodiff.
        let mk = |v: &Vec<f32>| {
            Tensor::<Cpu, 3>::from_data(TensorData::new(v.clone(), shape), &dev)
                .into_primitive()
                .tensor()
        };
        let h3 = Cpu::swiglu(mk(&g0), mk(&u0));
        let h3 = Tensor::<Cpu, 3>::from_primitive(TensorPrimitive::Float(h3));
        assert!(worst(&values(h3), &h2) < 1e-5);
    }
}
