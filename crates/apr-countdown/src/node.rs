//! The search's node arena entries and the path from the root to a node,
//! shared by the solvers' expansion (`search`) and their logs (`log`).

use apr_trace::{NodeId, NumList, Op, OpList};

/// A search node in the arena. Terminal successors (one number left) are
/// nodes too, without an id.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub nums: NumList,
    /// The operation that made this node (unused at the root).
    pub op: Op,
    pub id: NodeId,
    pub h: f64,
    pub parent: u32,
}

/// The parent index of the root.
pub(crate) const NO_PARENT: u32 = u32::MAX;

/// The operations from the root to node `idx` of an arena.
pub(crate) fn path_ops(nodes: &[Node], idx: usize) -> OpList {
    let mut ops = OpList::new();
    let mut at = idx;
    while nodes[at].parent != NO_PARENT {
        ops.push(nodes[at].op);
        at = nodes[at].parent as usize;
    }
    ops.reverse();
    ops
}
