//! APR: hybrid search that spawns child searches. When an expansion of the
//! top thread is promising and gives more than one new node, each new node is
//! searched by a child thread (beam `sub_beam`); the parent's call ends in a
//! spawn block, and its next call is its pre-spawn text plus the children's
//! join messages. The result is the whole thread tree.

use crate::heuristic::{Heuristic, Scorer};
use crate::log::{Event, SearchLog, ThreadLog};
use crate::problem::Problem;
use crate::rng::Rng;
use crate::search::{Ctx, Indices, MoveOrder, OpenSet, Pruning};
use apr_trace::{OpList, ThreadTree};
use serde::{Deserialize, Serialize};

/// Parameters of one APR search.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AprParams {
    /// Beam of the top thread.
    pub beam: usize,
    /// Beam of child threads (and of their children).
    pub sub_beam: usize,
    /// Probability that an eligible expansion spawns children.
    pub promising: f64,
    /// Heuristic ordering the search.
    pub heuristic: Heuristic,
    /// Successor pruning.
    pub pruning: Pruning,
    /// Order of the kept successors.
    #[serde(default, skip_serializing_if = "MoveOrder::is_shuffled")]
    pub order: MoveOrder,
    /// Threads at levels below this may spawn: 1 (the reference) lets only the
    /// top thread spawn; 2 lets its children spawn grandchildren, and so on.
    pub max_spawn_depth: u32,
}

impl AprParams {
    /// A search whose every eligible expansion spawns (`promising` 1),
    /// with the multiply heuristic, beam pruning and the official shuffled
    /// order: the solver trees that tests and benches script.
    pub fn always_spawning(beam: usize, sub_beam: usize, max_spawn_depth: u32) -> Self {
        AprParams {
            beam,
            sub_beam,
            promising: 1.0,
            heuristic: Heuristic::Mult,
            pruning: Pruning::Beam,
            order: MoveOrder::Shuffled,
            max_spawn_depth,
        }
    }
}

/// An APR thread tree and whether it solved the problem.
#[derive(Clone, Debug, PartialEq)]
pub struct AprOutput {
    /// Every call of every thread.
    pub tree: ThreadTree,
    /// The solution, when found.
    pub solution: Option<OpList>,
}

/// Runs APR on a problem with the randomness of `rng`.
pub fn apr(problem: &Problem, params: &AprParams, rng: &mut Rng) -> AprOutput {
    let log = apr_log(problem, params, rng);
    AprOutput {
        tree: log.tree(),
        solution: log.solution(),
    }
}

/// Runs APR and returns the solver's compact log (every thread's calls).
pub fn apr_log(problem: &Problem, params: &AprParams, rng: &mut Rng) -> SearchLog {
    let scorer = Scorer::new(params.heuristic, problem.target);
    let mut ctx = Ctx::new(problem, &scorer, rng, params.pruning, params.order);
    let (root, goal) = search(&mut ctx, params, 0, 0, params.beam.max(1));
    ctx.into_log(root, goal)
}

fn search(
    ctx: &mut Ctx<'_>,
    p: &AprParams,
    start: usize,
    level: u32,
    beam: usize,
) -> (ThreadLog, Option<usize>) {
    let mut first = Vec::with_capacity(if level == 0 { 256 } else { 128 });
    first.push(Event::MovingTo(start as u32));
    let mut calls: Vec<Vec<Event>> = vec![first];
    let mut children: Vec<Vec<ThreadLog>> = Vec::new();
    let mut open = OpenSet::default();
    open.push(start, ctx.nodes[start].h);
    while !open.is_empty() {
        let current: Indices = (0..beam).map_while(|_| open.pop()).collect();
        for (ci, &cur) in current.iter().enumerate() {
            let lines = calls.last_mut().expect("a thread has a call");
            lines.push(Event::State(cur as u32));
            let expansion = ctx.expand(cur, beam, lines);
            if let Some(g) = expansion.goal {
                ctx.push_goal_path(g, start, lines);
                return (ThreadLog { calls, children }, Some(g));
            }
            let mut to_explore = expansion.open;
            let spawn =
                level < p.max_spawn_depth && to_explore.len() > 1 && ctx.rng.chance(p.promising);
            if spawn {
                if p.order == MoveOrder::Generation {
                    // Spawn in print order (arena indices grow as nodes
                    // are printed); the reference spawns by heuristic.
                    to_explore.sort_unstable();
                }
                let sub_beam = p.sub_beam.max(1);
                let kids: Vec<(ThreadLog, Option<usize>)> = to_explore
                    .iter()
                    .map(|&n| search(ctx, p, n, level + 1, sub_beam))
                    .collect();
                let lines = calls.last_mut().expect("a thread has a call");
                let mut next = Vec::with_capacity(lines.len() * 2 + 64);
                next.extend_from_slice(lines);
                lines.push(Event::CallingSubSearches);
                for (i, &n) in to_explore.iter().enumerate() {
                    lines.push(Event::SpawnChild {
                        index: i as u32,
                        level: level + 1,
                        node: n as u32,
                    });
                }
                lines.push(Event::EndCallingSubSearches);
                next.push(Event::SubSearches);
                for (i, (&n, (_, goal))) in to_explore.iter().zip(&kids).enumerate() {
                    let (index, level, node) = (i as u32, level + 1, n as u32);
                    match goal {
                        Some(g) => {
                            next.push(Event::JoinGoal { index, level, node });
                            ctx.push_goal_path(*g, n, &mut next);
                        }
                        None => next.push(Event::JoinNoSolution { index, level, node }),
                    }
                }
                next.push(Event::EndSubSearches);
                let first_goal = kids.iter().find_map(|(_, g)| *g);
                children.push(kids.into_iter().map(|(t, _)| t).collect());
                if let Some(g) = first_goal {
                    next.push(Event::Goal(g as u32));
                    ctx.push_goal_path(g, start, &mut next);
                    calls.push(next);
                    return (ThreadLog { calls, children }, Some(g));
                }
                calls.push(next);
            } else {
                for n in to_explore {
                    open.push(n, ctx.nodes[n].h);
                }
            }
            // Departure: the reference reads the next node with a loop index
            // that a spawn round overwrote, naming the wrong node after a
            // spawn; here it is always the next popped node.
            if let Some(&next) = current.get(ci + 1) {
                calls
                    .last_mut()
                    .expect("a thread has a call")
                    .push(Event::MovingTo(next as u32));
            }
        }
        if let Some(next) = open.peek() {
            calls
                .last_mut()
                .expect("a thread has a call")
                .push(Event::MovingTo(next as u32));
        }
    }
    calls
        .last_mut()
        .expect("a thread has a call")
        .push(Event::NoSolutionFound);
    (ThreadLog { calls, children }, None)
}
