//! The typed model of one trace line and of one call's text.

use crate::types::{NodeId, Num, NumList, Op, OpList};

/// One line of the trace grammar (`apr-reference.md` section 3). Rendering a
/// line gives its text without the terminating `\n`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// `Current State: {target}:{nums}, Operations: {ops}`
    CurrentState {
        /// Target number.
        target: Num,
        /// Numbers of the state.
        nums: NumList,
        /// Operations from the root to this state.
        ops: OpList,
    },
    /// `Exploring Operation: {op}, Resulting Numbers: {nums}`
    Exploring {
        /// The operation tried.
        op: Op,
        /// The numbers after it.
        nums: NumList,
    },
    /// `Generated Node #{id}: {target}:{nums} Operation: {op}`
    Generated {
        /// The new node's id.
        id: NodeId,
        /// Target number.
        target: Num,
        /// The node's numbers.
        nums: NumList,
        /// The operation that produced it.
        op: Op,
    },
    /// `Generated Node #{index}: {nums} from Operation: {op}`, the form of
    /// the DFS solver's `optimal_path` (numbered nodes, no target).
    PathNode {
        /// Sequential node number (2, 3, ...).
        index: u32,
        /// The node's numbers.
        nums: NumList,
        /// The operation that produced it.
        op: Op,
    },
    /// `Moving to Node #{id}`
    MovingTo {
        /// The node moved to.
        id: NodeId,
    },
    /// `{value},{target} equal: Goal Reached`
    GoalReached {
        /// The single number left.
        value: Num,
        /// Target number.
        target: Num,
    },
    /// `{value},{target} unequal: No Solution`
    Unequal {
        /// The single number left.
        value: Num,
        /// Target number.
        target: Num,
    },
    /// `No solution found.`
    NoSolutionFound,
    /// SoS+: `Start Sub Search at level {level}: Moving to Node #{id}`
    StartSubSearch {
        /// Nesting level (1 for the first).
        level: u32,
        /// Node the sub search starts from.
        id: NodeId,
    },
    /// SoS+: `Exit Sub Search at level {level}`
    ExitSubSearch {
        /// Nesting level.
        level: u32,
    },
    /// SoS+: `No solution found in sub search`
    NoSolutionInSubSearch,
    /// APR spawn block opener: `<Calling Sub Searches>`
    CallingSubSearches,
    /// APR spawn block entry: `<Start Sub Search {index} at level {level}> Moving to Node #{id}`
    SpawnChild {
        /// Child index, 0-based, in block order.
        index: u32,
        /// Level of the child (1 below the top thread).
        level: u32,
        /// Node the child starts from.
        id: NodeId,
    },
    /// APR spawn block closer: `<End Calling Sub Searches>`
    EndCallingSubSearches,
    /// APR join block opener: `<Sub Searches>`
    SubSearches,
    /// APR join entry of a child that succeeded:
    /// `<Goal Reached in Sub Search {index} at level {level} at Node #{id}>`
    /// (the child's message follows as ordinary lines).
    JoinGoal {
        /// Child index.
        index: u32,
        /// Child level.
        level: u32,
        /// Node the child started from.
        id: NodeId,
    },
    /// APR join entry of a child that failed:
    /// `<No Solution in Sub Search {index} at level {level} at Node #{id}>`
    JoinNoSolution {
        /// Child index.
        index: u32,
        /// Child level.
        level: u32,
        /// Node the child started from.
        id: NodeId,
    },
    /// APR join block closer: `<End Sub Searches>`
    EndSubSearches,
}

/// A line with borrowed contents: what a solver's arena can lend without
/// building a [`Line`]. Rendering and token counting work on this form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // Fields mean what they mean in [`Line`].
pub enum LineRef<'a> {
    CurrentState {
        target: Num,
        nums: &'a [Num],
        ops: &'a [Op],
    },
    Exploring {
        op: &'a Op,
        nums: &'a [Num],
    },
    Generated {
        id: &'a NodeId,
        target: Num,
        nums: &'a [Num],
        op: &'a Op,
    },
    PathNode {
        index: u32,
        nums: &'a [Num],
        op: &'a Op,
    },
    MovingTo {
        id: &'a NodeId,
    },
    GoalReached {
        value: Num,
        target: Num,
    },
    Unequal {
        value: Num,
        target: Num,
    },
    NoSolutionFound,
    StartSubSearch {
        level: u32,
        id: &'a NodeId,
    },
    ExitSubSearch {
        level: u32,
    },
    NoSolutionInSubSearch,
    CallingSubSearches,
    SpawnChild {
        index: u32,
        level: u32,
        id: &'a NodeId,
    },
    EndCallingSubSearches,
    SubSearches,
    JoinGoal {
        index: u32,
        level: u32,
        id: &'a NodeId,
    },
    JoinNoSolution {
        index: u32,
        level: u32,
        id: &'a NodeId,
    },
    EndSubSearches,
}

impl Line {
    /// The borrowed form of this line.
    pub fn as_ref(&self) -> LineRef<'_> {
        match self {
            Line::CurrentState { target, nums, ops } => LineRef::CurrentState {
                target: *target,
                nums,
                ops,
            },
            Line::Exploring { op, nums } => LineRef::Exploring { op, nums },
            Line::Generated {
                id,
                target,
                nums,
                op,
            } => LineRef::Generated {
                id,
                target: *target,
                nums,
                op,
            },
            Line::PathNode { index, nums, op } => LineRef::PathNode {
                index: *index,
                nums,
                op,
            },
            Line::MovingTo { id } => LineRef::MovingTo { id },
            Line::GoalReached { value, target } => LineRef::GoalReached {
                value: *value,
                target: *target,
            },
            Line::Unequal { value, target } => LineRef::Unequal {
                value: *value,
                target: *target,
            },
            Line::NoSolutionFound => LineRef::NoSolutionFound,
            Line::StartSubSearch { level, id } => LineRef::StartSubSearch { level: *level, id },
            Line::ExitSubSearch { level } => LineRef::ExitSubSearch { level: *level },
            Line::NoSolutionInSubSearch => LineRef::NoSolutionInSubSearch,
            Line::CallingSubSearches => LineRef::CallingSubSearches,
            Line::SpawnChild { index, level, id } => LineRef::SpawnChild {
                index: *index,
                level: *level,
                id,
            },
            Line::EndCallingSubSearches => LineRef::EndCallingSubSearches,
            Line::SubSearches => LineRef::SubSearches,
            Line::JoinGoal { index, level, id } => LineRef::JoinGoal {
                index: *index,
                level: *level,
                id,
            },
            Line::JoinNoSolution { index, level, id } => LineRef::JoinNoSolution {
                index: *index,
                level: *level,
                id,
            },
            Line::EndSubSearches => LineRef::EndSubSearches,
        }
    }
}

impl LineRef<'_> {
    /// The owned line.
    pub fn to_line(&self) -> Line {
        match *self {
            LineRef::CurrentState { target, nums, ops } => Line::CurrentState {
                target,
                nums: NumList::from_slice(nums),
                ops: OpList::from_slice(ops),
            },
            LineRef::Exploring { op, nums } => Line::Exploring {
                op: *op,
                nums: NumList::from_slice(nums),
            },
            LineRef::Generated {
                id,
                target,
                nums,
                op,
            } => Line::Generated {
                id: id.clone(),
                target,
                nums: NumList::from_slice(nums),
                op: *op,
            },
            LineRef::PathNode { index, nums, op } => Line::PathNode {
                index,
                nums: NumList::from_slice(nums),
                op: *op,
            },
            LineRef::MovingTo { id } => Line::MovingTo { id: id.clone() },
            LineRef::GoalReached { value, target } => Line::GoalReached { value, target },
            LineRef::Unequal { value, target } => Line::Unequal { value, target },
            LineRef::NoSolutionFound => Line::NoSolutionFound,
            LineRef::StartSubSearch { level, id } => Line::StartSubSearch {
                level,
                id: id.clone(),
            },
            LineRef::ExitSubSearch { level } => Line::ExitSubSearch { level },
            LineRef::NoSolutionInSubSearch => Line::NoSolutionInSubSearch,
            LineRef::CallingSubSearches => Line::CallingSubSearches,
            LineRef::SpawnChild { index, level, id } => Line::SpawnChild {
                index,
                level,
                id: id.clone(),
            },
            LineRef::EndCallingSubSearches => Line::EndCallingSubSearches,
            LineRef::SubSearches => Line::SubSearches,
            LineRef::JoinGoal { index, level, id } => Line::JoinGoal {
                index,
                level,
                id: id.clone(),
            },
            LineRef::JoinNoSolution { index, level, id } => Line::JoinNoSolution {
                index,
                level,
                id: id.clone(),
            },
            LineRef::EndSubSearches => Line::EndSubSearches,
        }
    }
}

/// A conditioning prefix, written before the first line of a root prompt
/// with a trailing space and no newline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conditioning {
    /// APR: `Sub Call Budget: {n} ` (number of child threads to use).
    SubCallBudget(u32),
    /// SoS+: `Token Budget: {b} ` (trace length bin).
    TokenBudget(u32),
}

impl Conditioning {
    /// The SoS+ token budget bin for a trace of `tokens` tokens: rounded up
    /// to a multiple of `bin` (512 in the paper), at most `max` (4096).
    pub fn token_budget_for(tokens: usize, bin: u32, max: u32) -> Conditioning {
        let bin = bin.max(1) as usize;
        let b = tokens.div_ceil(bin).max(1) * bin;
        Conditioning::TokenBudget(b.min(max as usize) as u32)
    }
}

/// The text of one call (one sequence): an optional conditioning prefix and
/// `\n`-terminated lines.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Trace {
    /// Conditioning prefix of a root prompt.
    pub prefix: Option<Conditioning>,
    /// The lines in order.
    pub lines: Vec<Line>,
}

impl Trace {
    /// A trace of these lines with no prefix.
    pub fn from_lines(lines: Vec<Line>) -> Trace {
        Trace {
            prefix: None,
            lines,
        }
    }

    /// Index of the first line of a trailing spawn block
    /// (`<Calling Sub Searches>` ... `<End Calling Sub Searches>`), if the
    /// trace ends in one.
    pub fn spawn_block_start(&self) -> Option<usize> {
        if self.lines.last() != Some(&Line::EndCallingSubSearches) {
            return None;
        }
        self.lines
            .iter()
            .rposition(|l| matches!(l, Line::CallingSubSearches))
    }

    /// Number of `Exploring Operation` lines (the reference's rating counts them).
    pub fn explored(&self) -> usize {
        self.lines
            .iter()
            .filter(|l| matches!(l, Line::Exploring { .. }))
            .count()
    }

    /// Whether any line is an `equal: Goal Reached` line.
    pub fn has_goal(&self) -> bool {
        self.lines
            .iter()
            .any(|l| matches!(l, Line::GoalReached { .. }))
    }
}
