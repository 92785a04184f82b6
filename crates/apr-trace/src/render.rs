//! Rendering typed lines to the reference grammar, byte for byte.
//!
//! Rendering is on the hot path of data generation, so it appends to a
//! `String` directly (no `fmt` machinery) and formats numbers with `itoa`.

use crate::line::{Conditioning, Line, Trace};
use crate::types::{NodeId, Num, Op};
use std::fmt;

#[inline]
fn push_num(out: &mut String, n: impl itoa::Integer) {
    let mut buf = itoa::Buffer::new();
    out.push_str(buf.format(n));
}

fn push_op(out: &mut String, op: &Op) {
    push_num(out, op.lhs);
    out.push(op.kind.symbol());
    push_num(out, op.rhs);
    out.push('=');
    push_num(out, op.result);
}

/// Appends a Python-style list of numbers: `[22, 26, 31]`.
pub fn push_nums(out: &mut String, nums: &[Num]) {
    out.push('[');
    for (i, n) in nums.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        push_num(out, *n);
    }
    out.push(']');
}

/// Appends a Python-style list of operation strings: `['53-22=31', '26+5=31']`.
pub fn push_ops(out: &mut String, ops: &[Op]) {
    out.push('[');
    for (i, op) in ops.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push('\'');
        push_op(out, op);
        out.push('\'');
    }
    out.push(']');
}

/// Appends a node id: `0,2,1`.
pub fn push_id(out: &mut String, id: &NodeId) {
    for (i, p) in id.0.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_num(out, *p);
    }
}

/// Appends the text of a conditioning prefix, trailing space included.
pub fn push_conditioning(out: &mut String, c: Conditioning) {
    match c {
        Conditioning::SubCallBudget(n) => {
            out.push_str("Sub Call Budget: ");
            push_num(out, n);
        }
        Conditioning::TokenBudget(b) => {
            out.push_str("Token Budget: ");
            push_num(out, b);
        }
    }
    out.push(' ');
}

/// Appends one line's text followed by `\n`.
pub fn push_line(out: &mut String, line: &Line) {
    match line {
        Line::CurrentState { target, nums, ops } => {
            out.push_str("Current State: ");
            push_num(out, *target);
            out.push(':');
            push_nums(out, nums);
            out.push_str(", Operations: ");
            push_ops(out, ops);
        }
        Line::Exploring { op, nums } => {
            out.push_str("Exploring Operation: ");
            push_op(out, op);
            out.push_str(", Resulting Numbers: ");
            push_nums(out, nums);
        }
        Line::Generated {
            id,
            target,
            nums,
            op,
        } => {
            out.push_str("Generated Node #");
            push_id(out, id);
            out.push_str(": ");
            push_num(out, *target);
            out.push(':');
            push_nums(out, nums);
            out.push_str(" Operation: ");
            push_op(out, op);
        }
        Line::PathNode { index, nums, op } => {
            out.push_str("Generated Node #");
            push_num(out, *index);
            out.push_str(": ");
            push_nums(out, nums);
            out.push_str(" from Operation: ");
            push_op(out, op);
        }
        Line::MovingTo { id } => {
            out.push_str("Moving to Node #");
            push_id(out, id);
        }
        Line::GoalReached { value, target } => {
            push_num(out, *value);
            out.push(',');
            push_num(out, *target);
            out.push_str(" equal: Goal Reached");
        }
        Line::Unequal { value, target } => {
            push_num(out, *value);
            out.push(',');
            push_num(out, *target);
            out.push_str(" unequal: No Solution");
        }
        Line::NoSolutionFound => out.push_str("No solution found."),
        Line::StartSubSearch { level, id } => {
            out.push_str("Start Sub Search at level ");
            push_num(out, *level);
            out.push_str(": Moving to Node #");
            push_id(out, id);
        }
        Line::ExitSubSearch { level } => {
            out.push_str("Exit Sub Search at level ");
            push_num(out, *level);
        }
        Line::NoSolutionInSubSearch => out.push_str("No solution found in sub search"),
        Line::CallingSubSearches => out.push_str("<Calling Sub Searches>"),
        Line::SpawnChild { index, level, id } => {
            out.push_str("<Start Sub Search ");
            push_num(out, *index);
            out.push_str(" at level ");
            push_num(out, *level);
            out.push_str("> Moving to Node #");
            push_id(out, id);
        }
        Line::EndCallingSubSearches => out.push_str("<End Calling Sub Searches>"),
        Line::SubSearches => out.push_str("<Sub Searches>"),
        Line::JoinGoal { index, level, id } => {
            out.push_str("<Goal Reached in Sub Search ");
            push_num(out, *index);
            out.push_str(" at level ");
            push_num(out, *level);
            out.push_str(" at Node #");
            push_id(out, id);
            out.push('>');
        }
        Line::JoinNoSolution { index, level, id } => {
            out.push_str("<No Solution in Sub Search ");
            push_num(out, *index);
            out.push_str(" at level ");
            push_num(out, *level);
            out.push_str(" at Node #");
            push_id(out, id);
            out.push('>');
        }
        Line::EndSubSearches => out.push_str("<End Sub Searches>"),
    }
    out.push('\n');
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
