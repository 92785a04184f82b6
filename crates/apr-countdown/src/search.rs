//! What the SoS+ and APR solvers share: the node arena, the heuristic-ordered
//! open set, one expansion step, and the goal-path lines (as log events).

use crate::heuristic::Scorer;
use crate::log::{Event, SearchLog, ThreadLog};
use crate::node::{Node, NO_PARENT};
use crate::problem::Problem;
use crate::rng::Rng;
use crate::rules::{apply_move, combine};
use apr_trace::{NodeId, Num, NumList, Op};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// How an expansion prunes the successors of a node.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Pruning {
    /// Keep the `beam` best by heuristic (stable sort), as the official data.
    #[default]
    Beam,
    /// Keep every successor whose heuristic is at most this value (the
    /// reference's `threshold`, unused by its scripts).
    Threshold(f64),
}

/// The order in which an expansion prints its kept successors (and an APR
/// parent spawns them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MoveOrder {
    /// A random shuffle, as the official solvers.
    #[default]
    Shuffled,
    /// Best heuristic first, ties in generation order: the next move is a
    /// function of the state, so a model's greedy decoding can follow it.
    /// Not the official data (`docs/countdown-data.md`).
    Heuristic,
    /// The order the moves are generated in: pairs `(i, j)` with `i < j`
    /// left to right, each pair's operations in `combine`'s order; an APR
    /// parent spawns its children in this order too (the official solver
    /// sorts them by heuristic). The next move depends on the previous one
    /// and the state, the spawn list counts up, and where the goal's move
    /// falls does not favour the first child. Not the official data
    /// (`docs/countdown-data.md`).
    Generation,
}

impl MoveOrder {
    /// The official order (skipped when serialising, so configurations
    /// written before this option keep their form).
    pub fn is_shuffled(&self) -> bool {
        *self == MoveOrder::Shuffled
    }
}

#[derive(Clone, Copy)]
struct Entry {
    h: f64,
    seq: u64,
    idx: u32,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    // Reversed: BinaryHeap is a max-heap and we pop the lowest (h, seq).
    fn cmp(&self, o: &Self) -> Ordering {
        o.h.total_cmp(&self.h).then(o.seq.cmp(&self.seq))
    }
}

/// The open set: lowest heuristic first, ties in insertion order.
///
/// Departure: the reference's `heapq` breaks ties between equal heuristics
/// by heap layout; first-in-first-out is deterministic and documented.
#[derive(Default)]
pub(crate) struct OpenSet {
    heap: BinaryHeap<Entry>,
    seq: u64,
}

impl OpenSet {
    pub fn push(&mut self, idx: usize, h: f64) {
        self.seq += 1;
        self.heap.push(Entry {
            h,
            seq: self.seq,
            idx: idx as u32,
        });
    }
    pub fn pop(&mut self) -> Option<usize> {
        self.heap.pop().map(|e| e.idx as usize)
    }
    pub fn peek(&self) -> Option<usize> {
        self.heap.peek().map(|e| e.idx as usize)
    }
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

/// What an expansion produced.
pub(crate) struct Expansion {
    /// The goal node (arena index) if a successor reached the target; the
    /// expansion stops printing there.
    pub goal: Option<usize>,
    /// The new non-terminal nodes, sorted by heuristic (stable), as the
    /// reference's `nodes_to_explore.sort()`.
    pub open: Indices,
}

/// A short list of arena indices.
pub(crate) type Indices = SmallVec<[usize; 16]>;

/// A scored move, before its list is built: positions `i < j` and the
/// index `k` of the operation in [`combine`]'s output.
#[derive(Clone, Copy)]
pub(crate) struct Cand {
    h_bits: u64,
    pos: u16,
    i: u8,
    j: u8,
    k: u8,
}

/// Per-problem search state.
pub(crate) struct Ctx<'a> {
    scratch: Vec<Cand>,
    pub target: Num,
    pub scorer: &'a Scorer,
    pub rng: &'a mut Rng,
    pub pruning: Pruning,
    pub order: MoveOrder,
    pub nodes: Vec<Node>,
}

impl<'a> Ctx<'a> {
    pub fn new(
        problem: &Problem,
        scorer: &'a Scorer,
        rng: &'a mut Rng,
        pruning: Pruning,
        order: MoveOrder,
    ) -> Self {
        let target = problem.target;
        let nums: NumList = problem.nums.iter().copied().collect();
        let root = Node {
            h: scorer.score(&nums),
            nums,
            op: Op {
                lhs: 0,
                kind: apr_trace::OpKind::Add,
                rhs: 0,
                result: 0,
            },
            id: NodeId::root(),
            parent: NO_PARENT,
        };
        let mut nodes = Vec::with_capacity(512);
        nodes.push(root);
        Ctx {
            scratch: Vec::with_capacity(64),
            target,
            scorer,
            rng,
            pruning,
            order,
            nodes,
        }
    }

    /// The finished log, with the top thread and the goal node.
    pub fn into_log(self, root: ThreadLog, goal: Option<usize>) -> SearchLog {
        SearchLog {
            target: self.target,
            nodes: self.nodes,
            root,
            goal: goal.map(|g| g as u32),
        }
    }

    /// Expands node `cur`: prints its successors (after pruning, in the
    /// [`MoveOrder`]) into `lines`, stopping at the first that reaches the goal.
    /// Children are numbered in print order among the non-terminal ones.
    pub fn expand(&mut self, cur: usize, beam: usize, lines: &mut Vec<Event>) -> Expansion {
        // Score every move without building its list, prune, shuffle, and
        // only then build the kept successors.
        let mut cands = std::mem::take(&mut self.scratch);
        cands.clear();
        {
            let nums = &self.nodes[cur].nums;
            let part = self.scorer.partial(nums);
            for i in 0..nums.len() {
                for j in i + 1..nums.len() {
                    let base = self.scorer.pair_base(&part, nums[i], nums[j]);
                    for (k, op) in combine(nums[i], nums[j]).iter().enumerate() {
                        let h = self.scorer.score_with(&part, base, op.result);
                        debug_assert!(h >= 0.0);
                        cands.push(Cand {
                            h_bits: h.to_bits(),
                            pos: cands.len() as u16,
                            i: i as u8,
                            j: j as u8,
                            k: k as u8,
                        });
                    }
                }
            }
        }
        match self.pruning {
            // A stable sort by heuristic: heuristics are >= 0, where the bit
            // patterns of f64 order as the values do; ties keep generation
            // order through `pos`.
            Pruning::Beam => {
                cands.sort_unstable_by_key(|c| (c.h_bits, c.pos));
                cands.truncate(beam);
            }
            Pruning::Threshold(t) => cands.retain(|c| f64::from_bits(c.h_bits) <= t),
        }
        match self.order {
            MoveOrder::Shuffled => self.rng.shuffle(&mut cands),
            MoveOrder::Heuristic => cands.sort_unstable_by_key(|c| (c.h_bits, c.pos)),
            MoveOrder::Generation => cands.sort_unstable_by_key(|c| c.pos),
        }
        let mut open = Indices::new();
        let mut goal = None;
        let mut k = 0;
        for c in cands.iter() {
            let parent = &self.nodes[cur];
            let (i, j) = (c.i as usize, c.j as usize);
            let op = combine(parent.nums[i], parent.nums[j])[c.k as usize];
            let nums = apply_move(&parent.nums, i, j, op.result);
            let terminal = nums.len() == 1;
            let reached = terminal && nums[0] == self.target;
            let id = if terminal {
                NodeId::default()
            } else {
                parent.id.child(k)
            };
            let idx = self.nodes.len();
            self.nodes.push(Node {
                id,
                nums,
                op,
                h: f64::from_bits(c.h_bits),
                parent: cur as u32,
            });
            lines.push(Event::Explore(idx as u32));
            if reached {
                lines.push(Event::Goal(idx as u32));
                goal = Some(idx);
                break;
            } else if terminal {
                lines.push(Event::Unequal(idx as u32));
            } else {
                lines.push(Event::Generated(idx as u32));
                k += 1;
                open.push(idx);
            }
        }
        self.scratch = cands;
        open.sort_by(|&a, &b| self.nodes[a].h.total_cmp(&self.nodes[b].h));
        Expansion { goal, open }
    }

    /// The goal path from `start` to `goal`: `Moving to Node #start`, then
    /// per step its state, the operation, and the next node (or the goal).
    pub fn push_goal_path(&self, goal: usize, start: usize, lines: &mut Vec<Event>) {
        let mut chain: Indices = SmallVec::new();
        chain.push(goal);
        let mut at = goal;
        while at != start {
            at = self.nodes[at].parent as usize;
            chain.push(at);
        }
        chain.reverse();
        lines.push(Event::MovingTo(start as u32));
        for w in chain.windows(2) {
            let next = w[1] as u32;
            lines.push(Event::State(w[0] as u32));
            lines.push(Event::Explore(next));
            if w[1] == goal {
                lines.push(Event::Goal(next));
            } else {
                lines.push(Event::Generated(next));
                lines.push(Event::MovingTo(next));
            }
        }
    }
}
