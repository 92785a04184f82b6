//! Rendering typed lines to the reference grammar, byte for byte.
//!
//! Rendering is on the hot path of data generation, so it appends to a
//! [`Sink`] directly (no `fmt` machinery) and formats numbers with `itoa`.
//! One formatter serves owned lines ([`Line`]) and borrowed ones
//! ([`LineRef`], what a solver's arena lends), into plain text or straight
//! into a JSON string ([`JsonEscaped`]).

use crate::line::{Conditioning, Line, LineRef, Trace};
use crate::types::{NodeId, Num, Op};
use std::fmt;

/// Where rendered text goes.
pub trait Sink {
    /// Appends text that contains no line end.
    fn put(&mut self, s: &str);
    /// Appends one ASCII byte.
    fn put_ascii(&mut self, b: u8);
    /// Ends a line.
    fn newline(&mut self);
}

impl Sink for String {
    #[inline]
    fn put(&mut self, s: &str) {
        self.push_str(s);
    }
    #[inline]
    fn put_ascii(&mut self, b: u8) {
        debug_assert!(b.is_ascii());
        self.push(b as char);
    }
    #[inline]
    fn newline(&mut self) {
        self.push('\n');
    }
}

/// A sink that writes the inside of a JSON string: the renderer writes no
/// character that JSON escapes except line ends, which become `\n`.
pub struct JsonEscaped<'a>(pub &'a mut Vec<u8>);

impl Sink for JsonEscaped<'_> {
    #[inline]
    fn put(&mut self, s: &str) {
        debug_assert!(!s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\'));
        self.0.extend_from_slice(s.as_bytes());
    }
    #[inline]
    fn put_ascii(&mut self, b: u8) {
        debug_assert!(b.is_ascii() && b >= 0x20 && b != b'"' && b != b'\\');
        self.0.push(b);
    }
    #[inline]
    fn newline(&mut self) {
        self.0.extend_from_slice(b"\\n");
    }
}

#[inline(always)]
fn push_num(out: &mut impl Sink, n: impl Into<u64>) {
    let n: u64 = n.into();
    // Most numbers of a trace are below 1000: write their digits one by
    // one rather than through a variable-length copy.
    if n < 10 {
        out.put_ascii(b'0' + n as u8);
    } else if n < 100 {
        out.put_ascii(b'0' + (n / 10) as u8);
        out.put_ascii(b'0' + (n % 10) as u8);
    } else if n < 1000 {
        out.put_ascii(b'0' + (n / 100) as u8);
        out.put_ascii(b'0' + (n / 10 % 10) as u8);
        out.put_ascii(b'0' + (n % 10) as u8);
    } else {
        out.put(itoa::Buffer::new().format(n));
    }
}

fn push_op(out: &mut impl Sink, op: &Op) {
    push_num(out, op.lhs);
    out.put(op.kind.symbol_str());
    push_num(out, op.rhs);
    out.put("=");
    push_num(out, op.result);
}

/// Appends a Python-style list of numbers: `[22, 26, 31]`.
pub fn push_nums(out: &mut impl Sink, nums: &[Num]) {
    out.put("[");
    for (i, n) in nums.iter().enumerate() {
        if i > 0 {
            out.put(", ");
        }
        push_num(out, *n);
    }
    out.put("]");
}

/// Appends a Python-style list of operation strings: `['53-22=31', '26+5=31']`.
pub fn push_ops(out: &mut impl Sink, ops: &[Op]) {
    out.put("[");
    for (i, op) in ops.iter().enumerate() {
        out.put(if i > 0 { ", '" } else { "'" });
        push_op(out, op);
        out.put("'");
    }
    out.put("]");
}

/// Appends a node id: `0,2,1`.
pub fn push_id(out: &mut impl Sink, id: &NodeId) {
    for (i, p) in id.0.iter().enumerate() {
        if i > 0 {
            out.put(",");
        }
        push_num(out, *p);
    }
}

/// Appends the text of a conditioning prefix, trailing space included.
pub fn push_conditioning(out: &mut impl Sink, c: Conditioning) {
    match c {
        Conditioning::SubCallBudget(n) => {
            out.put("Sub Call Budget: ");
            push_num(out, n);
        }
        Conditioning::TokenBudget(b) => {
            out.put("Token Budget: ");
            push_num(out, b);
        }
    }
    out.put(" ");
}

/// Appends one line's text followed by `\n`.
pub fn push_line(out: &mut impl Sink, line: &Line) {
    push_line_ref(out, line.as_ref());
}

/// Appends one borrowed line's text followed by `\n`.
pub fn push_line_ref(out: &mut impl Sink, line: LineRef<'_>) {
    match line {
        LineRef::CurrentState { target, nums, ops } => {
            out.put("Current State: ");
            push_num(out, target);
            out.put(":");
            push_nums(out, nums);
            out.put(", Operations: ");
            push_ops(out, ops);
        }
        LineRef::Exploring { op, nums } => {
            out.put("Exploring Operation: ");
            push_op(out, op);
            out.put(", Resulting Numbers: ");
            push_nums(out, nums);
        }
        LineRef::Generated {
            id,
            target,
            nums,
            op,
        } => {
            out.put("Generated Node #");
            push_id(out, id);
            out.put(": ");
            push_num(out, target);
            out.put(":");
            push_nums(out, nums);
            out.put(" Operation: ");
            push_op(out, op);
        }
        LineRef::PathNode { index, nums, op } => {
            out.put("Generated Node #");
            push_num(out, index);
            out.put(": ");
            push_nums(out, nums);
            out.put(" from Operation: ");
            push_op(out, op);
        }
        LineRef::MovingTo { id } => {
            out.put("Moving to Node #");
            push_id(out, id);
        }
        LineRef::GoalReached { value, target } => {
            push_num(out, value);
            out.put(",");
            push_num(out, target);
            out.put(" equal: Goal Reached");
        }
        LineRef::Unequal { value, target } => {
            push_num(out, value);
            out.put(",");
            push_num(out, target);
            out.put(" unequal: No Solution");
        }
        LineRef::NoSolutionFound => out.put("No solution found."),
        LineRef::StartSubSearch { level, id } => {
            out.put("Start Sub Search at level ");
            push_num(out, level);
            out.put(": Moving to Node #");
            push_id(out, id);
        }
        LineRef::ExitSubSearch { level } => {
            out.put("Exit Sub Search at level ");
            push_num(out, level);
        }
        LineRef::NoSolutionInSubSearch => out.put("No solution found in sub search"),
        LineRef::CallingSubSearches => out.put("<Calling Sub Searches>"),
        LineRef::SpawnChild { index, level, id } => {
            out.put("<Start Sub Search ");
            push_num(out, index);
            out.put(" at level ");
            push_num(out, level);
            out.put("> Moving to Node #");
            push_id(out, id);
        }
        LineRef::EndCallingSubSearches => out.put("<End Calling Sub Searches>"),
        LineRef::SubSearches => out.put("<Sub Searches>"),
        LineRef::JoinGoal { index, level, id } => {
            out.put("<Goal Reached in Sub Search ");
            push_num(out, index);
            out.put(" at level ");
            push_num(out, level);
            out.put(" at Node #");
            push_id(out, id);
            out.put(">");
        }
        LineRef::JoinNoSolution { index, level, id } => {
            out.put("<No Solution in Sub Search ");
            push_num(out, index);
            out.put(" at level ");
            push_num(out, level);
            out.put(" at Node #");
            push_id(out, id);
            out.put(">");
        }
        LineRef::EndSubSearches => out.put("<End Sub Searches>"),
    }
    out.newline();
}

/// Appends every line of `lines`.
pub fn push_lines(out: &mut String, lines: &[Line]) {
    for l in lines {
        push_line(out, l);
    }
}

impl Trace {
    /// Appends the full text (prefix and lines) to `out`.
    pub fn render_into(&self, out: &mut String) {
        if let Some(c) = self.prefix {
            push_conditioning(out, c);
        }
        push_lines(out, &self.lines);
    }

    /// The full text of this call.
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(self.lines.len() * 64);
        self.render_into(&mut s);
        s
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(64);
        push_line(&mut s, self);
        s.pop();
        f.write_str(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::OpKind;
    use smallvec::smallvec;

    #[test]
    fn renders_each_line_kind() {
        let op = Op::new(98, OpKind::Sub, 65).unwrap();
        let id: NodeId = NodeId::root().child(3);
        let cases: Vec<(Line, &str)> = vec![
            (
                Line::CurrentState {
                    target: 70,
                    nums: smallvec![3, 34, 33],
                    ops: smallvec![op],
                },
                "Current State: 70:[3, 34, 33], Operations: ['98-65=33']",
            ),
            (
                Line::CurrentState {
                    target: 70,
                    nums: smallvec![98, 3],
                    ops: smallvec![],
                },
                "Current State: 70:[98, 3], Operations: []",
            ),
            (
                Line::Exploring {
                    op,
                    nums: smallvec![3, 34, 33],
                },
                "Exploring Operation: 98-65=33, Resulting Numbers: [3, 34, 33]",
            ),
            (
                Line::Generated {
                    id: id.clone(),
                    target: 70,
                    nums: smallvec![3, 34, 33],
                    op,
                },
                "Generated Node #0,3: 70:[3, 34, 33] Operation: 98-65=33",
            ),
            (
                Line::PathNode {
                    index: 2,
                    nums: smallvec![3, 34, 33],
                    op,
                },
                "Generated Node #2: [3, 34, 33] from Operation: 98-65=33",
            ),
            (Line::MovingTo { id: id.clone() }, "Moving to Node #0,3"),
            (
                Line::GoalReached {
                    value: 70,
                    target: 70,
                },
                "70,70 equal: Goal Reached",
            ),
            (
                Line::Unequal {
                    value: 2,
                    target: 70,
                },
                "2,70 unequal: No Solution",
            ),
            (Line::NoSolutionFound, "No solution found."),
            (
                Line::StartSubSearch {
                    level: 1,
                    id: id.clone(),
                },
                "Start Sub Search at level 1: Moving to Node #0,3",
            ),
            (
                Line::ExitSubSearch { level: 2 },
                "Exit Sub Search at level 2",
            ),
            (
                Line::NoSolutionInSubSearch,
                "No solution found in sub search",
            ),
            (Line::CallingSubSearches, "<Calling Sub Searches>"),
            (
                Line::SpawnChild {
                    index: 0,
                    level: 1,
                    id: id.clone(),
                },
                "<Start Sub Search 0 at level 1> Moving to Node #0,3",
            ),
            (Line::EndCallingSubSearches, "<End Calling Sub Searches>"),
            (Line::SubSearches, "<Sub Searches>"),
            (
                Line::JoinGoal {
                    index: 4,
                    level: 1,
                    id: id.clone(),
                },
                "<Goal Reached in Sub Search 4 at level 1 at Node #0,3>",
            ),
            (
                Line::JoinNoSolution {
                    index: 1,
                    level: 1,
                    id,
                },
                "<No Solution in Sub Search 1 at level 1 at Node #0,3>",
            ),
            (Line::EndSubSearches, "<End Sub Searches>"),
        ];
        for (line, text) in cases {
            assert_eq!(line.to_string(), text);
        }
    }

    #[test]
    fn renders_prefix() {
        let t = Trace {
            prefix: Some(Conditioning::SubCallBudget(6)),
            lines: vec![Line::MovingTo { id: NodeId::root() }],
        };
        assert_eq!(t.render(), "Sub Call Budget: 6 Moving to Node #0\n");
        let t = Trace {
            prefix: Some(Conditioning::token_budget_for(513, 512, 4096)),
            lines: vec![Line::NoSolutionFound],
        };
        assert_eq!(t.render(), "Token Budget: 1024 No solution found.\n");
        assert_eq!(
            Conditioning::token_budget_for(9000, 512, 4096),
            Conditioning::TokenBudget(4096)
        );
    }
}
