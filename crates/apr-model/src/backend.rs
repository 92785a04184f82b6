//! The backends this toolkit builds with.

/// burn's portable CPU backend (`flex`), f32.
pub type Cpu = burn::backend::Flex;

/// The CPU backend with automatic differentiation, for training.
pub type CpuTrain = burn::backend::Autodiff<Cpu>;

/// burn's CUDA backend, f32 (feature `cuda`).
#[cfg(feature = "cuda")]
pub type Cuda = burn::backend::Cuda<f32, i32>;

/// The CUDA backend with automatic differentiation (feature `cuda`).
#[cfg(feature = "cuda")]
pub type CudaTrain = burn::backend::Autodiff<Cuda>;
