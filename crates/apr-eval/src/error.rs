//! The evaluation's error type.

use std::path::PathBuf;

/// Errors of evaluation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad evaluation config.
    #[error("invalid evaluation config: {0}")]
    Config(String),
    /// From the Countdown environment (problem files).
    #[error(transparent)]
    Countdown(#[from] apr_countdown::Error),
    /// An I/O error on a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The rollout engine failed.
    #[error(transparent)]
    Rollout(#[from] apr_rollout::Error),
    /// A model or checkpoint error.
    #[error(transparent)]
    Model(#[from] apr_model::Error),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
