//! The trainer's error type.

use std::path::PathBuf;

/// Errors of training.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad training config.
    #[error("invalid training config: {0}")]
    Config(String),
    /// A trace file that cannot be read.
    #[error("{path}: record {record}: {reason}")]
    Data {
        /// The file.
        path: PathBuf,
        /// 1-based record number (0 for the whole file).
        record: usize,
        /// Why.
        reason: String,
    },
    /// A trace record that does not give training sequences.
    #[error("trace record ({problem}): {reason}")]
    Record {
        /// The record's problem.
        problem: String,
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
    /// A problem file that cannot be read.
    #[error(transparent)]
    Countdown(#[from] apr_countdown::Error),
    /// A model or checkpoint error.
    #[error(transparent)]
    Model(#[from] apr_model::Error),
    /// The rollout engine failed (a bad rollout config or model).
    #[error("rollout: {0}")]
    Rollout(String),
    /// A training-state file that does not load.
    #[error("training state {path}: {reason}")]
    State {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Another process holds the run directory's lock.
    #[error(
        "{dir} is in use by process {holder} (its lock file .lock is held); \
         wait for that run to end or choose another output directory"
    )]
    Locked {
        /// The run directory.
        dir: PathBuf,
        /// What the holder wrote in the lock file (its PID).
        holder: String,
    },
    /// The run directory's recorded config differs from the one given.
    #[error(
        "{dir} holds work done under another config ({keys}); \
         refusing to mix them: restore those settings, choose another \
         output directory, or pass --force to start over"
    )]
    ConfigMismatch {
        /// The run directory.
        dir: PathBuf,
        /// `key: old -> new` for each differing key.
        keys: String,
    },
    /// Training produced a non-finite loss, gradient norm or weight.
    #[error(
        "training diverged at step {step}: {what}; stopped without saving it \
         ({kept}); lower the learning rate or check the data"
    )]
    Diverged {
        /// The step that diverged (1-based).
        step: usize,
        /// What became non-finite.
        what: String,
        /// Which checkpoint is kept.
        kept: String,
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
}
