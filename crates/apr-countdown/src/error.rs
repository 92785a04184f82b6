//! The crate's error type.

/// Everything that can go wrong in `apr-countdown`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration or parameter is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A record of a data file is malformed.
    #[error("{path}: record {record}: {message}")]
    Record {
        /// The file.
        path: String,
        /// 1-based record (line) number.
        record: usize,
        /// What is wrong.
        message: String,
    },
    /// A trace breaks the grammar or the protocol.
    #[error(transparent)]
    Trace(#[from] apr_trace::Error),
    /// File input/output failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
