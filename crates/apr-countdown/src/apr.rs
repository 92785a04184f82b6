//! APR: hybrid search that spawns child searches. When an expansion of the
//! top thread is promising and gives more than one new node, each new node is
//! searched by a child thread (beam `sub_beam`); the parent's call ends in a
//! spawn block, and its next call is its pre-spawn text plus the children's
//! join messages. The result is the whole thread tree.

use crate::heuristic::{Heuristic, Scorer};
use crate::problem::Problem;
use crate::rng::Rng;
use crate::search::{Ctx, Indices, OpenSet, Pruning};
use apr_trace::{Line, OpList, ThreadTree, Trace};
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
    /// Threads at levels below this may spawn: 1 (the reference) lets only the
    /// top thread spawn; 2 lets its children spawn grandchildren, and so on.
    pub max_spawn_depth: u32,
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
    let scorer = Scorer::new(params.heuristic, problem.target);
    let mut ctx = Ctx::new(&problem.nums, problem.target, &scorer, rng, params.pruning);
    let (tree, goal) = search(&mut ctx, params, 0, 0, params.beam.max(1));
    AprOutput {
        tree,
        solution: goal.map(|g| ctx.ops(g)),
    }
}

fn search(
    ctx: &mut Ctx<'_>,
    p: &AprParams,
    start: usize,
    level: u32,
    beam: usize,
) -> (ThreadTree, Option<usize>) {
    let mut first = Vec::with_capacity(if level == 0 { 256 } else { 128 });
    first.push(Line::MovingTo {
        id: ctx.nodes[start].id.clone(),
    });
    let mut calls: Vec<Vec<Line>> = vec![first];
    let mut children: Vec<Vec<ThreadTree>> = Vec::new();
    let finish = |calls: Vec<Vec<Line>>, children| ThreadTree {
        calls: calls.into_iter().map(Trace::from_lines).collect(),
        children,
    };
    let mut open = OpenSet::default();
    open.push(start, ctx.nodes[start].h);
    while !open.is_empty() {
        let current: Indices = (0..beam).map_while(|_| open.pop()).collect();
        for (ci, &cur) in current.iter().enumerate() {
            let state = ctx.state_line(cur);
            let lines = calls.last_mut().expect("a thread has a call");
            lines.push(state);
            let expansion = ctx.expand(cur, beam, lines);
            if let Some(g) = expansion.goal {
                ctx.push_goal_path(g, start, lines);
                return (finish(calls, children), Some(g));
            }
            let to_explore = expansion.open;
            let spawn =
                level < p.max_spawn_depth && to_explore.len() > 1 && ctx.rng.chance(p.promising);
            if spawn {
                let sub_beam = p.sub_beam.max(1);
                let kids: Vec<(ThreadTree, Option<usize>)> = to_explore
                    .iter()
                    .map(|&n| search(ctx, p, n, level + 1, sub_beam))
                    .collect();
                let lines = calls.last_mut().expect("a thread has a call");
                let mut next = Vec::with_capacity(lines.len() * 2 + 64);
                next.extend_from_slice(lines);
                lines.push(Line::CallingSubSearches);
                for (i, &n) in to_explore.iter().enumerate() {
                    lines.push(Line::SpawnChild {
                        index: i as u32,
                        level: level + 1,
                        id: ctx.nodes[n].id.clone(),
                    });
                }
                lines.push(Line::EndCallingSubSearches);
                next.push(Line::SubSearches);
                for (i, (&n, (_, goal))) in to_explore.iter().zip(&kids).enumerate() {
                    let (index, level, id) = (i as u32, level + 1, ctx.nodes[n].id.clone());
                    match goal {
                        Some(g) => {
                            next.push(Line::JoinGoal { index, level, id });
                            ctx.push_goal_path(*g, n, &mut next);
                        }
                        None => next.push(Line::JoinNoSolution { index, level, id }),
                    }
                }
                next.push(Line::EndSubSearches);
                let first_goal = kids.iter().find_map(|(_, g)| *g);
                children.push(kids.into_iter().map(|(t, _)| t).collect());
                if let Some(g) = first_goal {
                    next.push(Line::GoalReached {
                        value: ctx.target,
                        target: ctx.target,
                    });
                    ctx.push_goal_path(g, start, &mut next);
                    calls.push(next);
                    return (finish(calls, children), Some(g));
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
                let id = ctx.nodes[next].id.clone();
                calls
                    .last_mut()
                    .expect("a thread has a call")
                    .push(Line::MovingTo { id });
            }
        }
        if let Some(next) = open.peek() {
            let id = ctx.nodes[next].id.clone();
            calls
                .last_mut()
                .expect("a thread has a call")
                .push(Line::MovingTo { id });
        }
    }
    calls
        .last_mut()
        .expect("a thread has a call")
        .push(Line::NoSolutionFound);
    (finish(calls, children), None)
}
