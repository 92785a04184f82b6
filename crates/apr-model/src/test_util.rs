//! Helpers shared by the unit tests of the fused operations.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// A tensor's values.
pub(crate) fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().to_vec().unwrap()
}

/// The largest absolute difference of two equally long slices.
pub(crate) fn worst(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
