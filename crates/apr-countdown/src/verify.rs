//! The verifier of typed traces (whole solution paths, as the solvers
//! write them, with typed failure reasons) and the datasets' `rating`.
//! Model answers are scored by [`crate::score()`], which follows the
//! official checker.

use crate::problem::Problem;
use crate::rules::apply_op_multiset;
use apr_trace::{extract_solution, parse_trace, Num, NumList, Op, SolutionPath, Trace};
use std::fmt;

/// Why a claimed solution fails.
#[derive(Clone, Debug, PartialEq)]
pub enum VerifyFailure {
    /// The text breaks the trace grammar.
    Parse(String),
    /// No solution could be read (no goal line, or no operation before it).
    NoSolution(String),
    /// The trace's target is not the problem's.
    WrongTarget {
        /// Target written in the trace.
        claimed: Num,
    },
    /// An operand is not among the current numbers.
    OperandMissing {
        /// 0-based step.
        step: usize,
        /// The operation.
        op: Op,
    },
    /// The written result is not the arithmetic result (or the operation is
    /// not allowed: a negative difference, an inexact division).
    BadArithmetic {
        /// 0-based step.
        step: usize,
        /// The operation.
        op: Op,
    },
    /// The numbers written before the last step are not those the
    /// operations give.
    StateMismatch {
        /// Numbers written.
        claimed: NumList,
        /// Numbers the operations give.
        actual: NumList,
    },
    /// The `Resulting Numbers` of the last step are not what it gives.
    ResultMismatch {
        /// Numbers written.
        claimed: NumList,
        /// Numbers the operations give.
        actual: NumList,
    },
    /// The operations do not end with exactly the target.
    NotSolved {
        /// Numbers left at the end.
        remaining: NumList,
    },
    /// The `equal: Goal Reached` line does not name the target twice.
    BadGoalLine {
        /// `(value, target)` written.
        written: (Num, Num),
    },
}

impl fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyFailure::Parse(e) => write!(f, "unparsable trace: {e}"),
            VerifyFailure::NoSolution(e) => write!(f, "no solution: {e}"),
            VerifyFailure::WrongTarget { claimed } => write!(f, "trace is for target {claimed}"),
            VerifyFailure::OperandMissing { step, op } => {
                write!(f, "step {step}: an operand of {op} is not available")
            }
            VerifyFailure::BadArithmetic { step, op } => write!(f, "step {step}: {op} is wrong"),
            VerifyFailure::StateMismatch { claimed, actual } => write!(
                f,
                "state before the last step is {claimed:?}, the operations give {actual:?}"
            ),
            VerifyFailure::ResultMismatch { claimed, actual } => write!(
                f,
                "resulting numbers {claimed:?}, the operation gives {actual:?}"
            ),
            VerifyFailure::NotSolved { remaining } => {
                write!(f, "operations end with {remaining:?}, not the target")
            }
            VerifyFailure::BadGoalLine { written } => {
                write!(f, "goal line says {},{}", written.0, written.1)
            }
        }
    }
}

/// Whether `a` and `b` hold the same numbers, counted with multiplicity.
pub(crate) fn same_multiset(a: &[Num], b: &[Num]) -> bool {
    let mut x: NumList = a.iter().copied().collect();
    let mut y: NumList = b.iter().copied().collect();
    x.sort_unstable();
    y.sort_unstable();
    x == y
}

/// Replays `ops` from the problem's numbers: every operand must be present
/// (as a multiset), every result right, and the end exactly `[target]`.
/// Returns the list before the last step.
pub fn verify_ops(problem: &Problem, ops: &[Op]) -> Result<NumList, VerifyFailure> {
    let mut nums: NumList = problem.nums.iter().copied().collect();
    let mut before = nums.clone();
    for (step, op) in ops.iter().enumerate() {
        if !op.is_correct() {
            return Err(VerifyFailure::BadArithmetic { step, op: *op });
        }
        before = nums.clone();
        nums =
            apply_op_multiset(&nums, op).ok_or(VerifyFailure::OperandMissing { step, op: *op })?;
    }
    if nums.as_slice() != [problem.target] {
        return Err(VerifyFailure::NotSolved { remaining: nums });
    }
    Ok(before)
}

/// Checks a claimed solution path against the problem: the operations
/// ([`verify_ops`]), the target, the state written before the last step, the
/// last step's resulting numbers and the goal line.
pub fn verify_path(problem: &Problem, path: &SolutionPath) -> Result<(), VerifyFailure> {
    if path.target != problem.target {
        return Err(VerifyFailure::WrongTarget {
            claimed: path.target,
        });
    }
    let before = verify_ops(problem, &path.ops)?;
    if !same_multiset(&before, &path.state_before_final) {
        return Err(VerifyFailure::StateMismatch {
            claimed: path.state_before_final.clone(),
            actual: before,
        });
    }
    if path.final_nums.as_slice() != [problem.target] {
        return Err(VerifyFailure::ResultMismatch {
            claimed: path.final_nums.clone(),
            actual: NumList::from_slice(&[problem.target]),
        });
    }
    if path.goal != (problem.target, problem.target) {
        return Err(VerifyFailure::BadGoalLine { written: path.goal });
    }
    Ok(())
}

/// Extracts and checks the solution of a parsed trace.
pub fn verify_trace(problem: &Problem, trace: &Trace) -> Result<SolutionPath, VerifyFailure> {
    let path = extract_solution(trace).map_err(|e| VerifyFailure::NoSolution(e.to_string()))?;
    verify_path(problem, &path)?;
    Ok(path)
}

/// Parses, extracts and checks the solution of a trace's text (any model
/// output): never panics.
pub fn verify_text(problem: &Problem, text: &str) -> Result<SolutionPath, VerifyFailure> {
    let trace = parse_trace(text).map_err(|e| VerifyFailure::Parse(e.to_string()))?;
    verify_trace(problem, &trace)
}

/// Size of the full search tree the reference normalises `rating` by.
pub fn max_rating_nodes(start_size: usize) -> f64 {
    match start_size {
        0..=2 => 4.0,
        3 => 48.0,
        4 => 1152.0,
        5 => 46080.0,
        _ => 2_764_800.0,
    }
}

/// The datasets' `rating`: `1 - (explored + 1) / max_nodes` when the search
/// path reaches the goal, else 0.
pub fn rating(search_path: &Trace, start_size: usize) -> f64 {
    rating_of(search_path.explored(), search_path.has_goal(), start_size)
}

/// [`rating`] from the count of `Exploring Operation` lines and whether a
/// goal line is present.
pub fn rating_of(explored: usize, has_goal: bool, start_size: usize) -> f64 {
    if has_goal {
        1.0 - (explored as f64 + 1.0) / max_rating_nodes(start_size)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apr_trace::OpKind;

    fn p() -> Problem {
        Problem {
            nums: vec![98, 3, 34, 65],
            target: 70,
        }
    }

    fn op(a: Num, k: OpKind, b: Num, r: Num) -> Op {
        Op {
            lhs: a,
            kind: k,
            rhs: b,
            result: r,
        }
    }

    #[test]
    fn ops_replay() {
        let good = [
            op(98, OpKind::Sub, 65, 33),
            op(3, OpKind::Add, 33, 36),
            op(34, OpKind::Add, 36, 70),
        ];
        assert_eq!(verify_ops(&p(), &good).unwrap().as_slice(), &[34, 36]);
        let mut bad = good;
        bad[1].result = 37;
        assert_eq!(
            verify_ops(&p(), &bad),
            Err(VerifyFailure::BadArithmetic {
                step: 1,
                op: bad[1]
            })
        );
        let missing = [op(98, OpKind::Sub, 66, 32)];
        assert!(matches!(
            verify_ops(&p(), &missing),
            Err(VerifyFailure::OperandMissing { step: 0, .. })
        ));
        assert!(matches!(
            verify_ops(&p(), &good[..2]),
            Err(VerifyFailure::NotSolved { .. })
        ));
        // 3 - 5 is not a Countdown move.
        assert!(matches!(
            verify_ops(&p(), &[op(3, OpKind::Sub, 5, 0)]),
            Err(VerifyFailure::BadArithmetic { .. })
        ));
    }

    #[test]
    fn text_verification() {
        let text = "Current State: 70:[34, 36], Operations: ['98-65=33', '3+33=36']\n\
Exploring Operation: 34+36=70, Resulting Numbers: [70]\n70,70 equal: Goal Reached\n";
        assert!(verify_text(&p(), text).is_ok());
        let lie = text.replace("[34, 36]", "[34, 35]");
        assert!(matches!(
            verify_text(&p(), &lie),
            Err(VerifyFailure::StateMismatch { .. })
        ));
        let lie = text.replace("Numbers: [70]", "Numbers: [71]");
        assert!(matches!(
            verify_text(&p(), &lie),
            Err(VerifyFailure::ResultMismatch { .. })
        ));
        let lie = text.replace("70,70 equal", "71,70 equal");
        assert!(matches!(
            verify_text(&p(), &lie),
            Err(VerifyFailure::BadGoalLine { .. })
        ));
        assert!(matches!(
            verify_text(&p(), "junk"),
            Err(VerifyFailure::Parse(_))
        ));
        assert!(matches!(
            verify_text(&p(), "No solution found.\n"),
            Err(VerifyFailure::NoSolution(_))
        ));
        assert!(verify_text(&p(), "\u{0}\u{1}").is_err());
        let other = Problem {
            nums: vec![98, 3, 34, 65],
            target: 71,
        };
        assert!(matches!(
            verify_text(&other, text),
            Err(VerifyFailure::WrongTarget { .. })
        ));
    }
}
