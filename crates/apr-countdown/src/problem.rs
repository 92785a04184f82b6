//! Countdown problems: generation (always solvable), the exhaustive DFS
//! solver that gives the reference solution and `optimal_path`, and the
//! keys that keep training and validation sets apart.

use crate::error::{Error, Result};
use crate::rng::{derive_seed, Rng};
use crate::rules::{apply_move, combine};
use apr_trace::{Line, Num, NumList, Op, OpList, Trace};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// A Countdown problem: reach `target` from `nums`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Problem {
    /// Input numbers, in the order given.
    pub nums: Vec<Num>,
    /// Target number.
    pub target: Num,
}

/// The key that identifies a problem up to the order of its numbers.
pub type ProblemKey = (Vec<Num>, Num);

impl Problem {
    /// The problem's (sorted numbers, target) key.
    pub fn key(&self) -> ProblemKey {
        let mut n = self.nums.clone();
        n.sort_unstable();
        (n, self.target)
    }

    /// The first solution of the exhaustive DFS (the reference's order), as
    /// moves `(i, j, op)` on the current list.
    pub fn solve_dfs(&self) -> Option<Vec<(usize, usize, Op)>> {
        let mut moves = Vec::with_capacity(self.nums.len());
        let nums: NumList = self.nums.iter().copied().collect();
        dfs(&nums, self.target, &mut moves).then_some(moves)
    }

    /// Whether any solution exists. Decided by building the set of values
    /// each subset of the numbers can make (every order of moves is a binary
    /// expression tree over all the numbers), which is several times faster
    /// than the DFS on the unsolvable draws that dominate generation.
    pub fn is_solvable(&self) -> bool {
        solvable(&self.nums, self.target)
    }

    /// The reference's `optimal_path` text for a DFS solution: each step's
    /// `Current State`, `Exploring Operation`, and a numbered `Generated Node`
    /// line, up to `Goal Reached`.
    ///
    /// Departure: the reference rebuilds each list by removing every number
    /// equal to an operand, which drops duplicates (`[5, 5, 3]` with `5+3`
    /// gives `[8]`); here the operands' positions are removed, as the search
    /// itself does.
    pub fn optimal_path(&self, moves: &[(usize, usize, Op)]) -> Trace {
        let mut lines = Vec::with_capacity(moves.len() * 3 + 1);
        let mut nums: NumList = self.nums.iter().copied().collect();
        let mut ops = OpList::new();
        lines.push(Line::CurrentState {
            target: self.target,
            nums: nums.clone(),
            ops: ops.clone(),
        });
        for (k, &(i, j, op)) in moves.iter().enumerate() {
            nums = apply_move(&nums, i, j, op.result);
            lines.push(Line::Exploring {
                op,
                nums: nums.clone(),
            });
            if nums.len() == 1 {
                lines.push(Line::GoalReached {
                    value: nums[0],
                    target: self.target,
                });
            } else {
                lines.push(Line::PathNode {
                    index: k as u32 + 2,
                    nums: nums.clone(),
                    op,
                });
                ops.push(op);
                lines.push(Line::CurrentState {
                    target: self.target,
                    nums: nums.clone(),
                    ops: ops.clone(),
                });
            }
        }
        Trace::from_lines(lines)
    }
}

fn dfs(nums: &[Num], target: Num, moves: &mut Vec<(usize, usize, Op)>) -> bool {
    if nums.len() == 1 {
        return nums[0] == target;
    }
    for i in 0..nums.len() {
        for j in i + 1..nums.len() {
            for op in combine(nums[i], nums[j]) {
                let next = apply_move(nums, i, j, op.result);
                moves.push((i, j, op));
                if dfs(&next, target, moves) {
                    return true;
                }
                moves.pop();
            }
        }
    }
    false
}

/// Whether `nums` can be combined, using every number, into exactly `target`.
pub fn solvable(nums: &[Num], target: Num) -> bool {
    let n = nums.len();
    if n == 0 || n > MAX_NUMBERS {
        return false;
    }
    if n == 1 {
        return nums[0] == target;
    }
    let full = (1usize << n) - 1;
    // reach[mask]: sorted, deduplicated values that the numbers in `mask`
    // make when all of them are used. The full mask is only tested.
    let mut reach: Vec<Vec<Num>> = vec![Vec::new(); full];
    for mask in 1..full {
        if mask.count_ones() == 1 {
            reach[mask].push(nums[mask.trailing_zeros() as usize]);
            continue;
        }
        let mut vals = Vec::new();
        each_split(mask, |a, b| {
            for &x in &reach[a] {
                for &y in &reach[b] {
                    vals.extend(combine(x, y).iter().map(|op| op.result));
                }
            }
        });
        vals.sort_unstable();
        vals.dedup();
        reach[mask] = vals;
    }
    let mut found = false;
    each_split(full, |a, b| {
        if found {
            return;
        }
        for &x in &reach[a] {
            for &y in &reach[b] {
                let (hi, lo) = if x >= y { (x, y) } else { (y, x) };
                if x.checked_add(y) == Some(target)
                    || x.checked_mul(y) == Some(target)
                    || hi - lo == target
                    || (lo != 0 && hi % lo == 0 && hi / lo == target)
                {
                    found = true;
                    return;
                }
            }
        }
    });
    found
}

/// Calls `f(a, b)` for each split of `mask` into two non-empty halves,
/// once per unordered pair (the half holding the lowest bit comes first).
fn each_split(mask: usize, mut f: impl FnMut(usize, usize)) {
    let low = mask & mask.wrapping_neg();
    let rest = mask ^ low;
    // Enumerate subsets `s` of `rest`; half a = low | s, b = the others.
    let mut s = rest;
    loop {
        let a = low | s;
        let b = mask ^ a;
        if b != 0 {
            f(a, b);
        }
        if s == 0 {
            break;
        }
        s = (s - 1) & rest;
    }
}

/// How problems are drawn. Defaults are the paper's: 4 numbers in 1..=99,
/// target in 10..=100.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProblemSpec {
    /// Fewest input numbers (at least 2).
    pub min_numbers: usize,
    /// Most input numbers (at most 6).
    pub max_numbers: usize,
    /// Smallest input number.
    pub min_number: Num,
    /// Largest input number (the reference: `max_target - 1`).
    pub max_number: Num,
    /// Smallest target.
    pub min_target: Num,
    /// Largest target.
    pub max_target: Num,
}

impl Default for ProblemSpec {
    fn default() -> Self {
        ProblemSpec {
            min_numbers: 4,
            max_numbers: 4,
            min_number: 1,
            max_number: 99,
            min_target: 10,
            max_target: 100,
        }
    }
}

/// Largest supported count of input numbers.
pub const MAX_NUMBERS: usize = 6;

impl ProblemSpec {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.min_numbers < 2
            || self.max_numbers > MAX_NUMBERS
            || self.min_numbers > self.max_numbers
        {
            return bad(format!(
                "numbers per problem must be a range within 2..={MAX_NUMBERS}, got {}..={}",
                self.min_numbers, self.max_numbers
            ));
        }
        if self.min_number > self.max_number || self.max_number > 1_000_000 {
            return bad(format!(
                "input numbers must be a range within 0..=1000000, got {}..={}",
                self.min_number, self.max_number
            ));
        }
        if self.min_target < 1 || self.min_target > self.max_target || self.max_target > 1_000_000 {
            return bad(format!(
                "targets must be a range within 1..=1000000, got {}..={}",
                self.min_target, self.max_target
            ));
        }
        Ok(())
    }

    /// Draws one problem: the count of numbers and the target first, then
    /// numbers until the problem is solvable (as the reference does).
    /// `None` if no solvable draw came in `max_tries`.
    pub fn draw(&self, rng: &mut Rng, max_tries: usize) -> Option<Problem> {
        let n = rng.range_inclusive(self.min_numbers as u64, self.max_numbers as u64) as usize;
        let target = rng.range_inclusive(self.min_target, self.max_target);
        for _ in 0..max_tries {
            let nums: Vec<Num> = (0..n)
                .map(|_| rng.range_inclusive(self.min_number, self.max_number))
                .collect();
            let p = Problem { nums, target };
            if p.is_solvable() {
                return Some(p);
            }
        }
        None
    }

    /// Problem `index` of the set with master `seed`: drawn from its own
    /// derived seed, redrawn while its key is in `exclude`. Deterministic and
    /// independent of the other problems, so sets can be made in parallel.
    pub fn problem(&self, seed: u64, index: u64, exclude: &HashSet<ProblemKey>) -> Result<Problem> {
        let mut rng = Rng::new(derive_seed(seed, 0x50_52_4f_42, index));
        for _ in 0..10_000 {
            match self.draw(&mut rng, 10_000) {
                Some(p) if !exclude.contains(&p.key()) => return Ok(p),
                Some(_) => continue,
                None => break,
            }
        }
        Err(Error::Config(format!(
            "could not draw a solvable problem outside the excluded set for {self:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dfs_first_solution_and_path() {
        let p = Problem {
            nums: vec![98, 3, 34, 65],
            target: 70,
        };
        let moves = p.solve_dfs().unwrap();
        let ops: Vec<String> = moves.iter().map(|m| m.2.to_string()).collect();
        assert_eq!(ops, ["98+3=101", "65-34=31", "101-31=70"]);
        assert_eq!(
            p.optimal_path(&moves).render(),
            "Current State: 70:[98, 3, 34, 65], Operations: []\n\
Exploring Operation: 98+3=101, Resulting Numbers: [34, 65, 101]\n\
Generated Node #2: [34, 65, 101] from Operation: 98+3=101\n\
Current State: 70:[34, 65, 101], Operations: ['98+3=101']\n\
Exploring Operation: 65-34=31, Resulting Numbers: [101, 31]\n\
Generated Node #3: [101, 31] from Operation: 65-34=31\n\
Current State: 70:[101, 31], Operations: ['98+3=101', '65-34=31']\n\
Exploring Operation: 101-31=70, Resulting Numbers: [70]\n\
70,70 equal: Goal Reached\n"
        );
        assert!(!Problem {
            nums: vec![1, 1],
            target: 5
        }
        .is_solvable());
    }

    #[test]
    fn subset_solver_agrees_with_dfs() {
        let mut rng = Rng::new(3);
        let mut yes = 0;
        for _ in 0..3000 {
            let n = rng.range_inclusive(2, 5) as usize;
            let nums: Vec<Num> = (0..n).map(|_| rng.range_inclusive(0, 30)).collect();
            let target = rng.range_inclusive(1, 60);
            let p = Problem { nums, target };
            assert_eq!(p.is_solvable(), p.solve_dfs().is_some(), "{p:?}");
            yes += usize::from(p.is_solvable());
        }
        assert!(yes > 300 && yes < 2900, "{yes}");
    }

    #[test]
    fn drawn_problems_follow_the_spec() {
        let spec = ProblemSpec {
            min_numbers: 3,
            max_numbers: 5,
            ..ProblemSpec::default()
        };
        spec.validate().unwrap();
        let none = HashSet::new();
        for i in 0..200 {
            let p = spec.problem(9, i, &none).unwrap();
            assert!((3..=5).contains(&p.nums.len()));
            assert!(p.nums.iter().all(|&n| (1..=99).contains(&n)));
            assert!((10..=100).contains(&p.target));
            assert!(p.is_solvable());
            assert_eq!(p, spec.problem(9, i, &none).unwrap());
        }
        let first = spec.problem(9, 0, &none).unwrap();
        let ex: HashSet<_> = [first.key()].into_iter().collect();
        assert_ne!(spec.problem(9, 0, &ex).unwrap().key(), first.key());
        assert!(ProblemSpec {
            min_numbers: 1,
            ..ProblemSpec::default()
        }
        .validate()
        .is_err());
    }
}
