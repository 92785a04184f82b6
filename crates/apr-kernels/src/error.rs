//! The kernels crate's error type.

/// Input a kernel cannot take.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A shape, feed or cache that does not fit the model (the message
    /// says which).
    #[error("{0}")]
    Input(String),
}

/// The kernels' result type.
pub type Result<T> = std::result::Result<T, Error>;
