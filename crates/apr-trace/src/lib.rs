//! # apr-trace
//!
//! The trace language of Adaptive Parallel Reasoning on Countdown, with no
//! tensor dependency:
//!
//! - [`Line`], [`Trace`]: a typed model of every line of the grammar
//!   (`apr-reference.md` section 3) and of one call's text;
//! - rendering ([`Trace::render`]) that reproduces the reference's text byte
//!   for byte, and a strict parser ([`parse_trace`]) that turns any input,
//!   model output included, into a trace or a typed [`ParseError`];
//! - [`ThreadTree`] / [`TraceDict`]: every call of every thread, and the
//!   datasets' `trace_dict` JSON form;
//! - the spawn/join protocol ([`protocol`]): child prompts, join messages,
//!   the parent's continuation;
//! - solution extraction ([`extract_solution`]), conditioning prefixes
//!   ([`Conditioning`]), root prompts per mode ([`TraceMode`]), token accounting ([`tree_stats`]) and the tokenizer
//!   ([`TraceTokenizer`], saved as a Hugging Face `tokenizer.json`);
//! - [`Task`]: what a rollout engine needs of a problem (its root prompt and
//!   the grading of its answer), implemented by the task crate.

pub mod accounting;
pub mod error;
pub mod line;
pub mod mode;
pub mod parse;
pub mod protocol;
pub mod render;
pub mod solution;
pub mod task;
pub mod tokenizer;
pub mod tree;
pub mod types;

pub use accounting::{dict_stats, stats_of, tree_stats, TokenStats};
pub use error::{Error, Result};
pub use line::{Conditioning, Line, LineRef, Trace};
pub use mode::TraceMode;
pub use parse::{parse_line, parse_trace, parse_trace_bytes, ParseError, ParseErrorKind};
pub use protocol::{
    check_protocol, continuation, continuation_for, continuation_for_with, join_message,
    parse_spawn, parse_spawn_with, ChildPrompt, JoinResult, SpawnBlock, SpawnIndices,
};
pub use solution::{extract_solution, extract_solution_text, SolutionPath};
pub use task::{Grade, Task};
pub use tokenizer::TraceTokenizer;
pub use tree::{ThreadTree, TraceDict, TreeParseError};
pub use types::{NodeId, Num, NumList, Op, OpKind, OpList};
