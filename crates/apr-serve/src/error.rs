//! The serving crate's error type.

/// Why a call or a server check failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server could not be reached (refused, reset, DNS), after the
    /// retries.
    #[error("{url}: cannot reach the server ({reason})")]
    Unreachable {
        /// The endpoint.
        url: String,
        /// The transport's message.
        reason: String,
    },
    /// No complete response within the timeout, after the retries.
    #[error("{url}: no response within {seconds} s")]
    Timeout {
        /// The endpoint.
        url: String,
        /// The timeout of one attempt.
        seconds: f64,
    },
    /// The server answered with an error status.
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        /// The endpoint.
        url: String,
        /// The status code.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// A response that is not what the protocol says.
    #[error("{url}: malformed response: {reason}")]
    Malformed {
        /// The endpoint.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// The server's model does not use the caller's vocabulary.
    #[error("{url}: vocabulary mismatch: {reason}")]
    Vocabulary {
        /// The endpoint.
        url: String,
        /// What did not match.
        reason: String,
    },
    /// A request the caller built wrong, or a pool that was shut down.
    #[error("bad request: {0}")]
    Request(String),
}

impl Error {
    /// Whether another attempt may succeed: the server unreachable, slow,
    /// overloaded (429) or failing (5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unreachable { .. } | Error::Timeout { .. } => true,
            Error::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// The serving crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
