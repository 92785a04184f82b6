//! The model crate's error type.

use std::path::PathBuf;

/// Errors of model configuration, checkpoints and generation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration that cannot describe a model.
    #[error("invalid model config: {0}")]
    Config(String),
    /// A preset name that does not exist.
    #[error("unknown preset {0:?} (known: tiny, small, paper)")]
    UnknownPreset(String),
    /// A TOML file that does not parse.
    #[error("{path}: {source}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// Why.
        source: toml::de::Error,
    },
    /// A JSON file that does not parse.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// A checkpoint file that is not what it should be.
    #[error("{path}: {reason}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// An I/O error on a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Input the model cannot take (empty prompt, too long, bad shape).
    #[error("bad input: {0}")]
    Input(String),
    /// Weights with NaN or infinite values (a model that cannot be saved).
    #[error("{tensor}: {count} of {total} values are not finite (NaN or infinite)")]
    NonFinite {
        /// The tensor, by its Hugging Face name.
        tensor: String,
        /// Its non-finite values.
        count: usize,
        /// Its values.
        total: usize,
    },
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
    pub(crate) fn checkpoint(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Checkpoint {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

impl From<apr_kernels::Error> for Error {
    /// A kernel's refusal is bad input to the model.
    fn from(e: apr_kernels::Error) -> Self {
        match e {
            apr_kernels::Error::Input(m) => Error::Input(m),
        }
    }
}
