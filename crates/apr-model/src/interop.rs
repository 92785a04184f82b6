//! Moving tensor values between burn and host memory: the host kernels
//! (fused operations, the host decoder) and the checkpoint writer read a
//! tensor's values with these and build tensors from theirs.

use crate::error::{Error, Result};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Shape, Tensor, TensorData, TensorMetadata, TensorPrimitive};

/// A tensor's values, row-major, as f32 on the host.
pub(crate) fn host_values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| Error::Input(format!("reading weights: {e:?}")))
}

/// The host values of a float primitive of any rank (the fused operations'
/// host forms read their inputs with it).
pub(crate) fn primitive_values<B: Backend>(x: &FloatTensor<B>) -> Option<Vec<f32>> {
    let n = x.shape().num_elements();
    let flat = B::float_reshape(x.clone(), Shape::new([n]));
    host_values(Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(flat))).ok()
}

/// A float primitive of `shape` from host values (row-major).
pub(crate) fn primitive_from_values<B: Backend>(
    v: Vec<f32>,
    shape: Shape,
    device: &B::Device,
) -> FloatTensor<B> {
    let n = v.len();
    let flat = Tensor::<B, 1>::from_data(TensorData::new(v, [n]), device);
    B::float_reshape(flat.into_primitive().tensor(), shape)
}
