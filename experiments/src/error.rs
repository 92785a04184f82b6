//! The crate's error type.

/// Everything that can go wrong in the experiment library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// File input/output failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A data file is malformed.
    #[error("{path}: record {record}: {message}")]
    Record {
        /// The file.
        path: String,
        /// 1-based record (line) number; 0 for the file as a whole.
        record: usize,
        /// What is wrong.
        message: String,
    },
    /// A data file holds no records.
    #[error("{path}: empty file, no records")]
    Empty {
        /// The file.
        path: String,
    },
    /// Records of a data file failed its checks (`gen-data stats`).
    #[error("{path}: {count} record(s) failed the checks reported above")]
    Invalid {
        /// The file.
        path: String,
        /// Records flagged.
        count: usize,
    },
    /// Bad arguments or configuration.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// From the Countdown environment.
    #[error(transparent)]
    Countdown(#[from] apr_countdown::Error),
    /// From the trace crate.
    #[error(transparent)]
    Trace(#[from] apr_trace::Error),
    /// From the model crate.
    #[error(transparent)]
    Model(#[from] apr_model::Error),
    /// From the trainer.
    #[error(transparent)]
    Train(#[from] apr_train::Error),
    /// From the evaluation.
    #[error(transparent)]
    Eval(#[from] apr_eval::Error),
    /// A rollout failure.
    #[error(transparent)]
    Rollout(#[from] apr_rollout::Error),
    /// A serving engine's error.
    #[error(transparent)]
    Serve(#[from] apr_serve::Error),
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
