//! Deterministic weight initialisation on the host: the seeded generator
//! lives in `apr-kernels`, so that a seed gives the same weights on every
//! backend (CPU and CUDA alike).

pub use apr_kernels::rng::SplitMix;
