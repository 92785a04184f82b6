//! Thread trees: every call of a thread and the children of each spawn round,
//! and their JSON form, the datasets' `trace_dict`.

use crate::line::Trace;
use crate::parse::{parse_trace, ParseError};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The datasets' `trace_dict`: `main_calls` are the texts of a thread's
/// successive calls; `sub_calls[i]` are the children spawned at the end of
/// `main_calls[i]`, each a `trace_dict` of the same structure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TraceDict {
    /// Texts of the thread's calls, in order.
    pub main_calls: Vec<String>,
    /// Children of each spawn round.
    pub sub_calls: Vec<Vec<TraceDict>>,
}

/// A thread and, recursively, the threads it spawned, with typed calls.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ThreadTree {
    /// The thread's calls in order; call `i + 1` continues call `i` after
    /// spawn round `i`.
    pub calls: Vec<Trace>,
    /// Children of each spawn round (`children[i]` were spawned by `calls[i]`).
    pub children: Vec<Vec<ThreadTree>>,
}

/// Where in a thread tree a call failed to parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeParseError {
    /// Path of the thread: the (round, child) pairs from the root thread.
    pub thread: Vec<(usize, usize)>,
    /// Index of the call in that thread.
    pub call: usize,
    /// The parse error inside the call.
    pub error: ParseError,
}

impl fmt::Display for TreeParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "thread root")?;
        for (r, c) in &self.thread {
            write!(f, "/sub_calls[{r}][{c}]")?;
        }
        write!(f, ", main_calls[{}]: {}", self.call, self.error)
    }
}

impl std::error::Error for TreeParseError {}

impl ThreadTree {
    /// A single-call thread with no children.
    pub fn single(call: Trace) -> ThreadTree {
        ThreadTree {
            calls: vec![call],
            children: Vec::new(),
        }
    }

    /// The text form.
    pub fn to_dict(&self) -> TraceDict {
        TraceDict {
            main_calls: self.calls.iter().map(Trace::render).collect(),
            sub_calls: self
                .children
                .iter()
                .map(|round| round.iter().map(ThreadTree::to_dict).collect())
                .collect(),
        }
    }

    /// Parses every call of a `trace_dict`.
    pub fn from_dict(d: &TraceDict) -> Result<ThreadTree, TreeParseError> {
        fn go(d: &TraceDict, path: &mut Vec<(usize, usize)>) -> Result<ThreadTree, TreeParseError> {
            let mut calls = Vec::with_capacity(d.main_calls.len());
            for (i, c) in d.main_calls.iter().enumerate() {
                calls.push(parse_trace(c).map_err(|error| TreeParseError {
                    thread: path.clone(),
                    call: i,
                    error,
                })?);
            }
            let mut children = Vec::with_capacity(d.sub_calls.len());
            for (r, round) in d.sub_calls.iter().enumerate() {
                let mut kids = Vec::with_capacity(round.len());
                for (k, child) in round.iter().enumerate() {
                    path.push((r, k));
                    kids.push(go(child, path)?);
                    path.pop();
                }
                children.push(kids);
            }
            Ok(ThreadTree { calls, children })
        }
        go(d, &mut Vec::new())
    }

    /// The last call of the root thread (the datasets' `search_path`).
    pub fn final_call(&self) -> Option<&Trace> {
        self.calls.last()
    }

    /// Number of threads below this one, at every depth.
    pub fn descendant_count(&self) -> usize {
        self.children
            .iter()
            .flatten()
            .map(|c| 1 + c.descendant_count())
            .sum()
    }

    /// Depth of the tree: 1 for a thread without children.
    pub fn depth(&self) -> usize {
        1 + self
            .children
            .iter()
            .flatten()
            .map(ThreadTree::depth)
            .max()
            .unwrap_or(0)
    }

    /// Every call of every thread, depth first (parent calls, then children).
    pub fn all_calls(&self) -> Vec<&Trace> {
        let mut v = Vec::new();
        fn go<'a>(t: &'a ThreadTree, v: &mut Vec<&'a Trace>) {
            v.extend(t.calls.iter());
            for c in t.children.iter().flatten() {
                go(c, v);
            }
        }
        go(self, &mut v);
        v
    }
}

impl TraceDict {
    /// Every call text, depth first (parent calls, then children), as the
    /// reference's `add_all_calls`.
    pub fn all_calls(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.main_calls.iter().map(String::as_str).collect();
        for c in self.sub_calls.iter().flatten() {
            v.extend(c.all_calls());
        }
        v
    }
}
