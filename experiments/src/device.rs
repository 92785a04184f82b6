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
