//! Value types of the trace language: numbers, operations and node ids.

use smallvec::SmallVec;
use std::fmt;

/// A number as written in a trace. Countdown only ever produces non-negative
/// integers; `u64` holds every product of six numbers below 100.
pub type Num = u64;

/// A list of numbers (`[22, 26, 31, 53]`), stored inline for up to four
/// entries (the paper's problems) and on the heap beyond.
pub type NumList = SmallVec<[Num; 4]>;

/// A list of operations (`['53-22=31', '26+5=31']`), inline for up to two
/// (every `Current State` of a 4-number problem) and on the heap beyond.
pub type OpList = SmallVec<[Op; 2]>;

/// The four arithmetic operators of Countdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpKind {
    /// `+`
    Add,
    /// `-` (always written larger minus smaller by the solvers)
    Sub,
    /// `*`
    Mul,
    /// `/` (exact division, larger by smaller)
    Div,
}

impl OpKind {
    /// The operator's character.
    pub fn symbol(self) -> char {
        match self {
            OpKind::Add => '+',
            OpKind::Sub => '-',
            OpKind::Mul => '*',
            OpKind::Div => '/',
        }
    }

    /// The operator as a one-character string.
    pub fn symbol_str(self) -> &'static str {
        match self {
            OpKind::Add => "+",
            OpKind::Sub => "-",
            OpKind::Mul => "*",
            OpKind::Div => "/",
        }
    }

    /// The operator for a character, if it is one.
    pub fn from_symbol(c: u8) -> Option<OpKind> {
        match c {
            b'+' => Some(OpKind::Add),
            b'-' => Some(OpKind::Sub),
            b'*' => Some(OpKind::Mul),
            b'/' => Some(OpKind::Div),
            _ => None,
        }
    }

    /// Applies the operator with exact integer semantics: `None` for a negative
    /// difference, a division by zero, an inexact division or an overflow.
    pub fn apply(self, lhs: Num, rhs: Num) -> Option<Num> {
        match self {
            OpKind::Add => lhs.checked_add(rhs),
            OpKind::Sub => lhs.checked_sub(rhs),
            OpKind::Mul => lhs.checked_mul(rhs),
            OpKind::Div => {
                if rhs != 0 && lhs.is_multiple_of(rhs) {
                    Some(lhs / rhs)
                } else {
                    None
                }
            }
        }
    }
}

/// One operation exactly as written, `lhs op rhs = result`. The result is the
/// written one, which may be wrong in model output: see [`Op::is_correct`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Op {
    /// Left operand.
    pub lhs: Num,
    /// Operator.
    pub kind: OpKind,
    /// Right operand.
    pub rhs: Num,
    /// Written result.
    pub result: Num,
}

impl Op {
    /// An operation whose written result is the true one.
    pub fn new(lhs: Num, kind: OpKind, rhs: Num) -> Option<Op> {
        kind.apply(lhs, rhs).map(|result| Op {
            lhs,
            kind,
            rhs,
            result,
        })
    }

    /// Whether the written result equals the arithmetic result.
    pub fn is_correct(&self) -> bool {
        self.kind.apply(self.lhs, self.rhs) == Some(self.result)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}{}={}",
            self.lhs,
            self.kind.symbol(),
            self.rhs,
            self.result
        )
    }
}

/// A node id of the search tree: the root is `0`, and a child's id is its
/// parent's id followed by `,k` (`0,2,1`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct NodeId(pub SmallVec<[u32; 4]>);

impl NodeId {
    /// The root id, `0`.
    pub fn root() -> NodeId {
        NodeId(SmallVec::from_slice(&[0]))
    }

    /// The id of this node's `k`-th child.
    pub fn child(&self, k: u32) -> NodeId {
        let mut v = self.0.clone();
        v.push(k);
        NodeId(v)
    }

    /// The parent's id, `None` for a single-component id.
    pub fn parent(&self) -> Option<NodeId> {
        if self.0.len() <= 1 {
            None
        } else {
            Some(NodeId(SmallVec::from_slice(&self.0[..self.0.len() - 1])))
        }
    }

    /// Number of components (the root has depth 1).
    pub fn depth(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_display_and_correctness() {
        let op = Op::new(53, OpKind::Sub, 22).unwrap();
        assert_eq!(op.to_string(), "53-22=31");
        assert!(op.is_correct());
        let wrong = Op { result: 30, ..op };
        assert!(!wrong.is_correct());
        assert_eq!(Op::new(7, OpKind::Div, 2), None);
        assert_eq!(Op::new(2, OpKind::Sub, 7), None);
        assert_eq!(Op::new(8, OpKind::Div, 0), None);
        assert_eq!(Op::new(8, OpKind::Div, 4).unwrap().result, 2);
    }

    #[test]
    fn node_ids() {
        let id = NodeId::root().child(2).child(1);
        assert_eq!(id.to_string(), "0,2,1");
        assert_eq!(id.parent().unwrap().to_string(), "0,2");
        assert_eq!(NodeId::root().parent(), None);
        assert_eq!(id.depth(), 3);
    }
}
