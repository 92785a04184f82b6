//! The rollout crate's error type.

use std::path::PathBuf;

/// Errors of the rollout engine. Model output that breaks the protocol is
/// not an error: it ends the thread with a recorded reason.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration the engine cannot run.
    #[error("invalid rollout config: {0}")]
    Config(String),
    /// The model failed a step.
    #[error(transparent)]
    Model(#[from] apr_model::Error),
    /// A model step that broke the [`crate::StepModel`] contract.
    #[error("model step: {0}")]
    Step(String),
    /// A backend that broke its contract (a call of an unknown session,
    /// waiting with nothing in flight).
    #[error("backend: {0}")]
    Backend(String),
    /// A serving engine that failed a call after its retries, or answered
    /// outside the protocol.
    #[error(transparent)]
    Server(#[from] apr_serve::Error),
    /// A TOML file that does not parse.
    #[error("{path}: {source}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// Why.
        source: toml::de::Error,
    },
    /// A file that cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
