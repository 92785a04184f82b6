//! Token accounting for a thread tree (`apr-reference.md` section 6).
//!
//! Each call is one sequence of `BOS + tokens + EOS`. A thread's successive
//! calls share their pre-spawn text; that shared prefix (and the BOS) is
//! counted once. Counts are in this crate's tokenizer's units, not the
//! Llama-2 tokens of the reference.

use crate::line::Trace;
use crate::tokenizer::TraceTokenizer;
use crate::tree::{ThreadTree, TraceDict};
use serde::{Deserialize, Serialize};

/// Token statistics of one problem's thread tree.
#[derive(Clone, Copy, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct TokenStats {
    /// Tokens of all calls of all threads, each thread's shared prefixes counted once.
    pub total: usize,
    /// Longest chain produced one after another: a thread's calls (shared
    /// prefixes once) plus, at each spawn round, its longest child's chain.
    pub sequential: usize,
    /// The longest single call (sequence), in tokens.
    pub longest_call: usize,
    /// Number of calls (training sequences) in the tree.
    pub calls: usize,
    /// Number of child threads at every depth.
    pub child_threads: usize,
    /// Number of spawn rounds in the whole tree.
    pub spawn_rounds: usize,
    /// Tokens summed over the child threads' calls (each counted whole).
    pub child_call_tokens: usize,
    /// Number of child-thread calls.
    pub child_calls: usize,
}

impl TokenStats {
    /// Mean tokens per call (`total / calls`, the reference's `avg_seq_token_count`).
    pub fn avg_call(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.total as f64 / self.calls as f64
        }
    }

    /// Mean tokens per child call (`avg_sub_seq_token_count`), 0 without children.
    pub fn avg_child_call(&self) -> f64 {
        if self.child_calls == 0 {
            0.0
        } else {
            self.child_call_tokens as f64 / self.child_calls as f64
        }
    }

    /// Children per spawn round (the reference's `sub_call_count`), 0 without spawns.
    pub fn children_per_round(&self) -> f64 {
        if self.spawn_rounds == 0 {
            0.0
        } else {
            self.child_threads as f64 / self.spawn_rounds as f64
        }
    }
}

/// Token statistics of any thread-tree shape: `calls_of` gives a thread's
/// calls as (tokens without BOS/EOS, tokens of whole lines shared with the
/// previous call), `rounds_of` its children per spawn round. The typed and
/// text forms here, and any other representation, share this one rule.
pub fn stats_of<T>(
    root: &T,
    calls_of: impl Fn(&T) -> Vec<(usize, usize)>,
    rounds_of: fn(&T) -> &[Vec<T>],
) -> TokenStats {
    let mut stats = TokenStats::default();
    let (total, sequential) = account(root, &calls_of, rounds_of, 0, &mut stats);
    stats.total = total;
    stats.sequential = sequential;
    stats
}

fn account<T>(
    thread: &T,
    calls_of: &impl Fn(&T) -> Vec<(usize, usize)>,
    rounds_of: fn(&T) -> &[Vec<T>],
    depth: usize,
    stats: &mut TokenStats,
) -> (usize, usize) {
    let calls = calls_of(thread);
    let mut total = 0;
    for (i, &(n, shared)) in calls.iter().enumerate() {
        let seq = n + 2;
        stats.longest_call = stats.longest_call.max(seq);
        stats.calls += 1;
        if depth > 0 {
            stats.child_calls += 1;
            stats.child_call_tokens += seq;
        }
        total += if i == 0 { seq } else { seq - shared - 1 };
    }
    let mut sequential = total;
    for round in rounds_of(thread) {
        stats.spawn_rounds += 1;
        let mut longest = 0;
        for child in round.iter() {
            stats.child_threads += 1;
            let (t, s) = account(child, calls_of, rounds_of, depth + 1, stats);
            total += t;
            longest = longest.max(s);
        }
        sequential += longest;
    }
    (total, sequential)
}

/// Token statistics of a typed thread tree, computed from the typed lines
/// without rendering (fast path for data generation).
pub fn tree_stats(tree: &ThreadTree) -> TokenStats {
    let calls_of = |t: &ThreadTree| {
        t.calls
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let shared = if i == 0 {
                    0
                } else {
                    shared_tokens_typed(&t.calls[i - 1], c)
                };
                (TraceTokenizer::count_trace(c), shared)
            })
            .collect()
    };
    stats_of(tree, calls_of, |t| &t.children)
}

fn shared_tokens_typed(a: &Trace, b: &Trace) -> usize {
    if a.prefix != b.prefix {
        return 0;
    }
    let lines: usize = a
        .lines
        .iter()
        .zip(&b.lines)
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| TraceTokenizer::count_line(x))
        .sum();
    // Shared prefixes are whole lines: a prefix alone is not shared, as in
    // the text form.
    if lines == 0 {
        0
    } else {
        lines + a.prefix.map_or(0, TraceTokenizer::count_conditioning)
    }
}

/// Token statistics of a `trace_dict` given as text, with any tokenizer's
/// counting function. Shared prefixes are taken at whole lines.
pub fn dict_stats(dict: &TraceDict, count: &impl Fn(&str) -> usize) -> TokenStats {
    let calls_of = |t: &TraceDict| {
        t.main_calls
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let shared = if i == 0 {
                    0
                } else {
                    count(shared_line_prefix(&t.main_calls[i - 1], c))
                };
                (count(c), shared)
            })
            .collect()
    };
    stats_of(dict, calls_of, |t| &t.sub_calls)
}

/// The longest common prefix of `a` and `b` that ends at a line end.
pub fn shared_line_prefix<'a>(a: &'a str, b: &str) -> &'a str {
    let n = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    // Search bytes: `n` may fall inside a multi-byte character, but a `\n`
    // byte always ends a character.
    match a.as_bytes()[..n].iter().rposition(|&b| b == b'\n') {
        Some(i) => &a[..=i],
        None => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_trace;

    fn dict(main: &[&str], sub: Vec<Vec<TraceDict>>) -> TraceDict {
        TraceDict {
            main_calls: main.iter().map(|s| s.to_string()).collect(),
            sub_calls: sub,
        }
    }

    #[test]
    fn hand_computed_counts() {
        // "Moving to Node #0\n" = 3 tokens, "Moving to Node #0,1\n" = 5,
        // "No solution found.\n" = 2, "<Calling Sub Searches>\n" = 2.
        let child_a = dict(&["Moving to Node #0,1\nNo solution found.\n"], vec![]); // 7
        let child_b = dict(&["Moving to Node #0,2\n"], vec![]); // 5
        let parent = dict(
            &[
                "Moving to Node #0\n<Calling Sub Searches>\n", // 3 + 2 = 5
                "Moving to Node #0\n<Sub Searches>\n<End Sub Searches>\nNo solution found.\n", // 3+2+2+2 = 9
            ],
            vec![vec![child_a, child_b]],
        );
        let tok = TraceTokenizer::new();
        let s = dict_stats(&parent, &|t| tok.count(t));
        // Calls with BOS/EOS: 7, 11, 9, 7. Shared prefix of the parent's
        // calls: BOS + 3 tokens.
        assert_eq!(s.total, 7 + (11 - 4) + 9 + 7);
        assert_eq!(s.sequential, 7 + 7 + 9);
        assert_eq!(s.longest_call, 11);
        assert_eq!(s.calls, 4);
        assert_eq!(s.child_threads, 2);
        assert_eq!(s.spawn_rounds, 1);
        assert_eq!(s.children_per_round(), 2.0);
        assert_eq!(s.avg_child_call(), 8.0);
        // The typed path agrees.
        let tree = ThreadTree::from_dict(&parent).unwrap();
        assert_eq!(tree_stats(&tree), s);
    }

    #[test]
    fn shared_prefix_stops_at_line_end() {
        assert_eq!(shared_line_prefix("ab\ncd\n", "ab\nce\n"), "ab\n");
        assert_eq!(shared_line_prefix("ab\n", "ac\n"), "");
        let a = parse_trace("Moving to Node #0\n").unwrap();
        assert_eq!(shared_tokens_typed(&a, &a), 3);
    }
}
