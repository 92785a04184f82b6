//! The solvers' native output: a compact log of events that name nodes of
//! the search arena. Every event is one trace line; the log renders the
//! text, materialises typed [`Line`]s, and counts tokens without building
//! anything in between, which keeps data generation fast.

use crate::node::Node;
use apr_trace::render::LineWriter;
use apr_trace::{
    stats_of, Line, LineRef, Num, OpList, ThreadTree, TokenStats, Trace, TraceDict, TraceTokenizer,
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
    /// Calls `f` with the borrowed line of an event (nothing is built but
    /// the operation list of a `Current State`, on the stack).
    pub fn with_line<R>(&self, e: Event, f: impl FnOnce(LineRef<'_>) -> R) -> R {
        let node = |i: u32| &self.nodes[i as usize];
        let target = self.target;
        let line = match e {
            Event::State(i) => {
                let ops = self.ops(i);
                return f(LineRef::CurrentState {
                    target,
                    nums: &node(i).nums,
                    ops: &ops,
                });
            }
            Event::Explore(i) => LineRef::Exploring {
                op: &node(i).op,
                nums: &node(i).nums,
            },
            Event::Goal(i) => LineRef::GoalReached {
                value: node(i).nums[0],
                target,
            },
            Event::Unequal(i) => LineRef::Unequal {
                value: node(i).nums[0],
                target,
            },
            Event::Generated(i) => LineRef::Generated {
                id: &node(i).id,
                target,
                nums: &node(i).nums,
                op: &node(i).op,
            },
            Event::MovingTo(i) => LineRef::MovingTo { id: &node(i).id },
            Event::NoSolutionFound => LineRef::NoSolutionFound,
            Event::StartSubSearch { level, node: i } => LineRef::StartSubSearch {
                level,
                id: &node(i).id,
            },
            Event::ExitSubSearch { level } => LineRef::ExitSubSearch { level },
            Event::NoSolutionInSubSearch => LineRef::NoSolutionInSubSearch,
            Event::CallingSubSearches => LineRef::CallingSubSearches,
            Event::SpawnChild {
                index,
                level,
                node: i,
            } => LineRef::SpawnChild {
                index,
                level,
                id: &node(i).id,
            },
            Event::EndCallingSubSearches => LineRef::EndCallingSubSearches,
            Event::SubSearches => LineRef::SubSearches,
            Event::JoinGoal {
                index,
                level,
                node: i,
            } => LineRef::JoinGoal {
                index,
                level,
                id: &node(i).id,
            },
            Event::JoinNoSolution {
                index,
                level,
                node: i,
            } => LineRef::JoinNoSolution {
                index,
                level,
                id: &node(i).id,
            },
            Event::EndSubSearches => LineRef::EndSubSearches,
        };
        f(line)
    }

    /// The typed line of an event.
    pub fn line(&self, e: Event) -> Line {
        self.with_line(e, |l| l.to_line())
    }

    /// The operations from the root to node `i`.
    pub(crate) fn ops(&self, i: u32) -> OpList {
        crate::node::path_ops(&self.nodes, i as usize)
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

    /// Appends a call's text to a byte buffer.
    pub fn render_call(&self, call: &[Event], out: &mut Vec<u8>) {
        let mut w = LineWriter::<false>::new(out);
        for &e in call {
            self.with_line(e, |l| w.line(l));
        }
    }

    /// A call's text.
    pub fn render(&self, call: &[Event]) -> String {
        let mut v = Vec::with_capacity(call.len() * 56);
        self.render_call(call, &mut v);
        // The renderer writes ASCII only, so this never takes the lossy path.
        String::from_utf8(v).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
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

    /// Appends a call's text as the inside of a JSON string and counts its
    /// tokens as it writes them: returns the call's tokens and the tokens
    /// of its first lines that equal those of `prev` (the thread's previous
    /// call; empty for a first call), what [`token_stats`](Self::token_stats)
    /// counts for it.
    pub(crate) fn push_call_json(
        &self,
        call: &[Event],
        prev: &[Event],
        out: &mut Vec<u8>,
    ) -> (usize, usize) {
        let same = prev.iter().zip(call).take_while(|(a, b)| a == b).count();
        let mut w = LineWriter::<true>::new(out);
        let (mut tokens, mut shared) = (0, 0);
        for (k, &e) in call.iter().enumerate() {
            if k == same {
                shared = tokens;
            }
            tokens += self.with_line(e, |l| w.line(l));
        }
        if same == call.len() {
            shared = tokens;
        }
        (tokens, shared)
    }

    /// Token statistics from each call's (tokens, shared tokens), given in
    /// the order [`stats_of`] visits the calls: a thread's calls, then its
    /// children's, round by round, depth first.
    pub(crate) fn stats_from_counts(&self, counts: &[(usize, usize)]) -> TokenStats {
        let at = std::cell::Cell::new(0);
        let calls_of = |t: &ThreadLog| {
            let start = at.get();
            let end = (start + t.calls.len()).min(counts.len());
            at.set(end);
            counts[start.min(end)..end].to_vec()
        };
        let stats = stats_of(&self.root, calls_of, |t| &t.children);
        debug_assert_eq!(at.get(), counts.len(), "one count per call");
        stats
    }

    /// Token statistics, counted from the events without rendering. Each
    /// event is counted once: a call's prefix shared with the previous call
    /// reuses that call's counts.
    pub fn token_stats(&self) -> TokenStats {
        let count = |e: Event| self.with_line(e, TraceTokenizer::count_line_ref);
        let calls_of = |t: &ThreadLog| {
            let mut out = Vec::with_capacity(t.calls.len());
            // sums[k]: tokens of the first k events of the previous call.
            let mut prev: &[Event] = &[];
            let mut prev_sums = vec![0];
            for c in &t.calls {
                let n = prev.iter().zip(c).take_while(|(a, b)| a == b).count();
                let mut sums = Vec::with_capacity(c.len() + 1);
                sums.extend_from_slice(&prev_sums[..=n]);
                for &e in &c[n..] {
                    let before = *sums.last().expect("starts with a count");
                    sums.push(before + count(e));
                }
                let shared = if out.is_empty() { 0 } else { sums[n] };
                out.push((sums[c.len()], shared));
                prev = c;
                prev_sums = sums;
            }
            out
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
