//! The `--device` flag.

use crate::{Error, Result};

/// A device to run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// burn's `flex` CPU backend.
    Cpu,
    /// A CUDA device (feature `cuda`).
    #[cfg(feature = "cuda")]
    Cuda(usize),
}

/// Parses `cpu`, `cuda` or `cuda:N`.
pub fn parse(s: &str) -> Result<Device> {
    match s {
        "cpu" => Ok(Device::Cpu),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::Cuda(0)),
        #[cfg(feature = "cuda")]
        s if s.starts_with("cuda:") => s[5..]
            .parse()
            .map(Device::Cuda)
            .map_err(|_| Error::Config(format!("bad device {s:?}"))),
        s if s.starts_with("cuda") => Err(Error::Config(format!(
            "device {s:?}: this build has no CUDA backend (build with --features cuda)"
        ))),
        s => Err(Error::Config(format!(
            "unknown device {s:?} (cpu, cuda, cuda:N)"
        ))),
    }
}

/// Makes `dtype` (`f32` or `bf16`) the float type of every tensor created
/// on `device` from now on (burn's `set_default_dtypes`): weights,
/// activations, and on the CUDA backend the KV cache. Call it before
/// anything touches the device. Checkpoints stay f32 on disk; the CPU's
/// host decoder computes in f32 from the (rounded) weights.
pub fn set_dtype<B: burn::tensor::backend::Backend>(device: &B::Device, dtype: &str) -> Result<()> {
    use burn::tensor::{FloatDType, IntDType};
    let float = match dtype {
        "f32" => return Ok(()),
        "bf16" => FloatDType::BF16,
        other => {
            return Err(Error::Config(format!(
                "unknown dtype {other:?} (f32, bf16)"
            )))
        }
    };
    burn::tensor::set_default_dtypes::<B>(device, float, IntDType::I32)
        .map_err(|e| Error::Config(format!("dtype {dtype}: {e:?}")))
}

/// Evaluates `$body` on the backend the `--device` string names: inside it
/// `$B` is the backend type (`infer`: `apr_model::Cpu` or `Cuda`; `train`:
/// `CpuTrain` or `CudaTrain`) and `$dev` a reference to its device. An
/// unknown device is an error returned with `?`.
macro_rules! with_backend {
    ($device:expr, infer, |$B:ident, $dev:ident| $body:expr) => {
        $crate::device::with_backend!(
            @go $device, apr_model::Cpu, apr_model::backend::Cuda, $B, $dev, $body
        )
    };
    ($device:expr, train, |$B:ident, $dev:ident| $body:expr) => {
        $crate::device::with_backend!(
            @go $device, apr_model::CpuTrain, apr_model::backend::CudaTrain, $B, $dev, $body
        )
    };
    (@go $device:expr, $cpu:ty, $cuda:ty, $B:ident, $dev:ident, $body:expr) => {
        match $crate::device::parse($device)? {
            $crate::device::Device::Cpu => {
                type $B = $cpu;
                let $dev = &Default::default();
                $body
            }
            #[cfg(feature = "cuda")]
            $crate::device::Device::Cuda(i) => {
                type $B = $cuda;
                let $dev = &burn::backend::cuda::CudaDevice::new(i);
                $body
            }
        }
    };
}
pub(crate) use with_backend;
