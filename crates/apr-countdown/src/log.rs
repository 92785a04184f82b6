//! The solvers' native output: a compact log of events that name nodes of
//! the search arena. Every event is one trace line; the log renders the
//! text, materialises typed [`Line`]s, and counts tokens without building
//! anything in between, which keeps data generation fast.

use crate::search::Node;
use apr_trace::render::push_line;
use apr_trace::{
    stats_of, Line, Num, NumList, OpList, ThreadTree, TokenStats, Trace, TraceDict, TraceTokenizer,
};

/// One trace line, by reference to the arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// `Current State` of a node.
    State(u32),
    /// `Exploring Operation` that made a node, with its numbers.
    Explore(u32),
    /// `equal: Goal Reached` for a node of one number.
    Goal(u32),
    /// `unequal: No Solution` for a node of one number.
    Unequal(u32),
    /// `Generated Node` line of a node.
    Generated(u32),
    /// `Moving to Node #` a node.
    MovingTo(u32),
    /// `No solution found.`
    NoSolutionFound,
    /// SoS+ `Start Sub Search at level {level}: Moving to Node #`.
    StartSubSearch {
        /// Level.
        level: u32,
        /// Node.
        node: u32,
    },
    /// SoS+ `Exit Sub Search at level {level}`.
    ExitSubSearch {
        /// Level.
        level: u32,
    },
    /// SoS+ `No solution found in sub search`.
    NoSolutionInSubSearch,
    /// `<Calling Sub Searches>`.
    CallingSubSearches,
    /// `<Start Sub Search {index} at level {level}> Moving to Node #`.
    SpawnChild {
        /// Index in the block.
        index: u32,
        /// Level.
        level: u32,
        /// Node.
        node: u32,
    },
    /// `<End Calling Sub Searches>`.
    EndCallingSubSearches,
    /// `<Sub Searches>`.
    SubSearches,
    /// `<Goal Reached in Sub Search ...>`.
    JoinGoal {
        /// Index in the block.
        index: u32,
        /// Level.
        level: u32,
        /// Node.
        node: u32,
    },
    /// `<No Solution in Sub Search ...>`.
    JoinNoSolution {
        /// Index in the block.
        index: u32,
        /// Level.
        level: u32,
        /// Node.
        node: u32,
    },
    /// `<End Sub Searches>`.
    EndSubSearches,
}

/// A thread's calls (as events) and the children of each spawn round.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ThreadLog {
    /// Events of each call.
    pub calls: Vec<Vec<Event>>,
    /// Children of each spawn round.
    pub children: Vec<Vec<ThreadLog>>,
}

/// A solver's whole output: the arena, the thread log, and the goal node.
#[derive(Clone, Debug)]
pub struct SearchLog {
    pub(crate) target: Num,
    pub(crate) nodes: Vec<Node>,
    /// The top thread.
    pub root: ThreadLog,
    pub(crate) goal: Option<u32>,
}

impl SearchLog {
    /// The typed line of an event.
    pub fn line(&self, e: Event) -> Line {
        let node = |i: u32| &self.nodes[i as usize];
        let target = self.target;
        match e {
            Event::State(i) => Line::CurrentState {
                target,
                nums: NumList::from_slice(&node(i).nums),
                ops: self.ops(i),
            },
            Event::Explore(i) => Line::Exploring {
                op: node(i).op,
                nums: NumList::from_slice(&node(i).nums),
            },
            Event::Goal(i) => Line::GoalReached {
                value: node(i).nums[0],
                target,
            },
            Event::Unequal(i) => Line::Unequal {
                value: node(i).nums[0],
                target,
            },
            Event::Generated(i) => Line::Generated {
                id: node(i).id.clone(),
                target,
                nums: NumList::from_slice(&node(i).nums),
                op: node(i).op,
            },
            Event::MovingTo(i) => Line::MovingTo {
                id: node(i).id.clone(),
            },
            Event::NoSolutionFound => Line::NoSolutionFound,
            Event::StartSubSearch { level, node: i } => Line::StartSubSearch {
                level,
                id: node(i).id.clone(),
            },
            Event::ExitSubSearch { level } => Line::ExitSubSearch { level },
            Event::NoSolutionInSubSearch => Line::NoSolutionInSubSearch,
            Event::CallingSubSearches => Line::CallingSubSearches,
            Event::SpawnChild {
                index,
                level,
                node: i,
            } => Line::SpawnChild {
                index,
                level,
                id: node(i).id.clone(),
            },
            Event::EndCallingSubSearches => Line::EndCallingSubSearches,
            Event::SubSearches => Line::SubSearches,
            Event::JoinGoal {
                index,
                level,
                node: i,
            } => Line::JoinGoal {
                index,
                level,
                id: node(i).id.clone(),
            },
            Event::JoinNoSolution {
                index,
                level,
                node: i,
            } => Line::JoinNoSolution {
                index,
                level,
                id: node(i).id.clone(),
            },
            Event::EndSubSearches => Line::EndSubSearches,
        }
    }

    /// The operations from the root to node `i`.
    pub(crate) fn ops(&self, i: u32) -> OpList {
        crate::search::path_ops(&self.nodes, i as usize)
    }

    /// The solution's operations, when the search found one.
    pub fn solution(&self) -> Option<OpList> {
        self.goal.map(|g| self.ops(g))
    }

    /// A call as a typed trace.
    pub fn trace(&self, call: &[Event]) -> Trace {
        Trace::from_lines(call.iter().map(|&e| self.line(e)).collect())
    }

    /// The whole thread tree, typed.
    pub fn tree(&self) -> ThreadTree {
        fn go(log: &SearchLog, t: &ThreadLog) -> ThreadTree {
            ThreadTree {
                calls: t.calls.iter().map(|c| log.trace(c)).collect(),
                children: t
                    .children
                    .iter()
                    .map(|r| r.iter().map(|c| go(log, c)).collect())
                    .collect(),
            }
        }
        go(self, &self.root)
    }

    /// Appends a call's text.
    pub fn render_call(&self, call: &[Event], out: &mut String) {
        for &e in call {
            push_line(out, &self.line(e));
        }
    }

    /// A call's text.
    pub fn render(&self, call: &[Event]) -> String {
        let mut s = String::with_capacity(call.len() * 56);
        self.render_call(call, &mut s);
        s
    }

    /// The `trace_dict` text form.
    pub fn dict(&self) -> TraceDict {
        fn go(log: &SearchLog, t: &ThreadLog) -> TraceDict {
            TraceDict {
                main_calls: t.calls.iter().map(|c| log.render(c)).collect(),
                sub_calls: t
                    .children
                    .iter()
                    .map(|r| r.iter().map(|c| go(log, c)).collect())
                    .collect(),
            }
        }
        go(self, &self.root)
    }

    /// Appends a call's text as the inside of a JSON string: the renderer
    /// writes no character that JSON escapes except the line ends.
    pub(crate) fn push_call_json(&self, call: &[Event], out: &mut Vec<u8>, line: &mut String) {
        for &e in call {
            line.clear();
            push_line(line, &self.line(e));
            let body = &line.as_bytes()[..line.len() - 1];
            debug_assert!(!body.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\'));
            out.extend_from_slice(body);
            out.extend_from_slice(b"\\n");
        }
    }

    /// Token statistics, counted from the events without rendering.
    pub fn token_stats(&self) -> TokenStats {
        let count = |call: &[Event]| -> usize {
            call.iter()
                .map(|&e| TraceTokenizer::count_line(&self.line(e)))
                .sum()
        };
        let calls_of = |t: &ThreadLog| {
            t.calls
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let shared = if i == 0 {
                        0
                    } else {
                        let prev = &t.calls[i - 1];
                        let n = prev.iter().zip(c).take_while(|(a, b)| a == b).count();
                        count(&c[..n])
                    };
                    (count(c), shared)
                })
                .collect()
        };
        stats_of(&self.root, calls_of, |t| &t.children)
    }

    /// Number of `Exploring Operation` lines and whether a goal line is
    /// present, in a call (what `rating` reads).
    pub fn explored_and_goal(call: &[Event]) -> (usize, bool) {
        let explored = call
            .iter()
            .filter(|e| matches!(e, Event::Explore(_)))
            .count();
        let goal = call.iter().any(|e| matches!(e, Event::Goal(_)));
        (explored, goal)
    }
}
