//! The crate's error type.

use crate::parse::ParseError;
use crate::tree::TreeParseError;

/// Everything that can go wrong in `apr-trace`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call's text breaks the grammar.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A call inside a thread tree breaks the grammar.
    #[error(transparent)]
    TreeParse(#[from] TreeParseError),
    /// The parent's text does not end in a spawn block.
    #[error("the parent's text does not end in a spawn block")]
    NoSpawnBlock,
    /// A `<Calling Sub Searches>` block is not closed by `<End Calling Sub Searches>`.
    #[error("spawn block opened on line {line} is not closed by <End Calling Sub Searches>")]
    UnterminatedSpawnBlock {
        /// 1-based line of `<Calling Sub Searches>`.
        line: usize,
    },
    /// A spawn block with no `<Start Sub Search ...>` line.
    #[error("spawn block names no children")]
    EmptySpawnBlock,
    /// A line inside a spawn block that is not a `<Start Sub Search ...>` line.
    #[error("line {line} inside the spawn block is not a <Start Sub Search ...> line")]
    UnexpectedLineInSpawnBlock {
        /// 1-based line number.
        line: usize,
    },
    /// Child indices of a spawn block are not 0, 1, 2, ... in order.
    #[error("spawn block entry {position} has index {found}")]
    BadChildIndex {
        /// Position in the block.
        position: usize,
        /// Index written.
        found: u32,
    },
    /// A spawn names a node the parent never generated.
    #[error("spawn names node #{0}, which the parent never generated")]
    UnknownNode(String),
    /// The number of join results does not match the spawn block.
    #[error("{found} join results for a spawn block of {expected} children")]
    JoinCountMismatch {
        /// Children in the block.
        expected: usize,
        /// Results given.
        found: usize,
    },
    /// A thread tree whose calls do not follow the spawn/join protocol.
    #[error("spawn round {round}: {message}")]
    TreeProtocol {
        /// Index of the spawn round in the thread where it failed.
        round: usize,
        /// What does not match.
        message: String,
    },
    /// No solution could be read from a trace.
    #[error("no solution in trace: {0}")]
    NoSolution(&'static str),
    /// Tokenizer construction or loading failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// JSON (de)serialisation failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
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
