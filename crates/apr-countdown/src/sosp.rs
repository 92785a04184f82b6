//! SoS+: serialized hybrid search. A beam search ordered by a heuristic that,
//! when an expansion is judged promising (a coin flip), dives depth-first into
//! each new node in turn with a nested sub search, all in one thread.

use crate::heuristic::{Heuristic, Scorer};
use crate::log::{Event, SearchLog, ThreadLog};
use crate::problem::Problem;
use crate::rng::Rng;
use crate::search::{Ctx, Indices, MoveOrder, OpenSet, Pruning};
use apr_trace::{OpList, Trace};
use serde::{Deserialize, Serialize};

/// Parameters of one SoS+ search.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SospParams {
    /// Nodes popped per step and successors kept per node.
    pub beam: usize,
    /// Probability that an expansion is promising (dives into sub searches).
    pub promising: f64,
    /// Heuristic ordering the search.
    pub heuristic: Heuristic,
    /// Successor pruning.
    pub pruning: Pruning,
    /// Order of the kept successors.
    #[serde(default, skip_serializing_if = "MoveOrder::is_shuffled")]
    pub order: MoveOrder,
}

/// A SoS+ trace and whether it solved the problem.
#[derive(Clone, Debug, PartialEq)]
pub struct SospOutput {
    /// The single thread's trace.
    pub trace: Trace,
    /// The solution, when found.
    pub solution: Option<OpList>,
}

/// Runs SoS+ on a problem with the randomness of `rng`.
pub fn sosp(problem: &Problem, params: &SospParams, rng: &mut Rng) -> SospOutput {
    let log = sosp_log(problem, params, rng);
    SospOutput {
        trace: log.trace(&log.root.calls[0]),
        solution: log.solution(),
    }
}

/// Runs SoS+ and returns the solver's compact log (one thread, one call).
pub fn sosp_log(problem: &Problem, params: &SospParams, rng: &mut Rng) -> SearchLog {
    let scorer = Scorer::new(params.heuristic, problem.target);
    let mut ctx = Ctx::new(problem, &scorer, rng, params.pruning, params.order);
    let mut lines = Vec::with_capacity(256);
    let goal = search(&mut ctx, params, 0, 0, &mut lines);
    let root = ThreadLog {
        calls: vec![lines],
        children: Vec::new(),
    };
    ctx.into_log(root, goal)
}

fn search(
    ctx: &mut Ctx<'_>,
    p: &SospParams,
    start: usize,
    level: u32,
    lines: &mut Vec<Event>,
) -> Option<usize> {
    let beam = p.beam.max(1);
    let mut open = OpenSet::default();
    open.push(start, ctx.nodes[start].h);
    while !open.is_empty() {
        let current: Indices = (0..beam).map_while(|_| open.pop()).collect();
        for (ci, &cur) in current.iter().enumerate() {
            lines.push(Event::State(cur as u32));
            let expansion = ctx.expand(cur, beam, lines);
            if let Some(g) = expansion.goal {
                ctx.push_goal_path(g, 0, lines);
                return Some(g);
            }
            let dive = ctx.rng.chance(p.promising);
            for n in expansion.open {
                if dive {
                    lines.push(Event::StartSubSearch {
                        level: level + 1,
                        node: n as u32,
                    });
                    let found = search(ctx, p, n, level + 1, lines);
                    lines.push(Event::ExitSubSearch { level: level + 1 });
                    if found.is_some() {
                        return found;
                    }
                    lines.push(Event::NoSolutionInSubSearch);
                } else {
                    open.push(n, ctx.nodes[n].h);
                }
            }
            if let Some(&next) = current.get(ci + 1) {
                lines.push(Event::MovingTo(next as u32));
            }
        }
        if let Some(next) = open.peek() {
            lines.push(Event::MovingTo(next as u32));
        }
    }
    lines.push(Event::NoSolutionFound);
    None
}
