//! Reading the claimed solution out of a finished trace.

use crate::error::{Error, Result};
use crate::line::{Line, Trace};
use crate::parse::parse_trace;
use crate::types::{Num, NumList, Op, OpList};

/// The solution a trace claims, as the reference checker reads it: at the
/// first `equal: Goal Reached` line, the operations of the latest
/// `Current State` before it plus the `Exploring Operation` just before it.
/// Nothing here is checked: `apr-countdown`'s verifier does that.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SolutionPath {
    /// Target of that `Current State`.
    pub target: Num,
    /// Numbers of that `Current State` (the claimed state before the last step).
    pub state_before_final: NumList,
    /// Every operation from the root, the final one last.
    pub ops: OpList,
    /// Numbers claimed after the final operation.
    pub final_nums: NumList,
    /// `(value, target)` written on the goal line.
    pub goal: (Num, Num),
}

impl SolutionPath {
    /// The operations as strings (the datasets' `solution` field).
    pub fn op_strings(&self) -> Vec<String> {
        self.ops.iter().map(Op::to_string).collect()
    }
}

/// Extracts the claimed solution of a parsed trace.
pub fn extract_solution(trace: &Trace) -> Result<SolutionPath> {
    let lines = &trace.lines;
    let g = lines
        .iter()
        .position(|l| matches!(l, Line::GoalReached { .. }))
        .ok_or(Error::NoSolution("no 'equal: Goal Reached' line"))?;
    let Line::GoalReached { value, target } = lines[g] else {
        unreachable!("position() matched a goal line")
    };
    let (op, final_nums) = match g.checked_sub(1).map(|i| &lines[i]) {
        Some(Line::Exploring { op, nums }) => (*op, nums.clone()),
        _ => {
            return Err(Error::NoSolution(
                "goal line is not preceded by an 'Exploring Operation' line",
            ))
        }
    };
    let Some(Line::CurrentState {
        target: t,
        nums,
        ops,
    }) = lines[..g]
        .iter()
        .rev()
        .find(|l| matches!(l, Line::CurrentState { .. }))
    else {
        return Err(Error::NoSolution("no 'Current State' line before the goal"));
    };
    let mut all = ops.clone();
    all.push(op);
    Ok(SolutionPath {
        target: *t,
        state_before_final: nums.clone(),
        ops: all,
        final_nums,
        goal: (value, target),
    })
}

/// Parses a trace's text and extracts its claimed solution.
pub fn extract_solution_text(text: &str) -> Result<SolutionPath> {
    extract_solution(&parse_trace(text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_first_goal() {
        let text = "Current State: 70:[98, 3, 34, 65], Operations: []\n\
Exploring Operation: 98-65=33, Resulting Numbers: [3, 34, 33]\n\
Generated Node #0,0: 70:[3, 34, 33] Operation: 98-65=33\n\
Moving to Node #0,0\n\
Current State: 70:[3, 34, 33], Operations: ['98-65=33']\n\
Exploring Operation: 3+33=36, Resulting Numbers: [34, 36]\n\
Generated Node #0,0,0: 70:[34, 36] Operation: 3+33=36\n\
Moving to Node #0,0,0\n\
Current State: 70:[34, 36], Operations: ['98-65=33', '3+33=36']\n\
Exploring Operation: 34+36=70, Resulting Numbers: [70]\n\
70,70 equal: Goal Reached\n";
        let s = extract_solution_text(text).unwrap();
        assert_eq!(s.op_strings(), ["98-65=33", "3+33=36", "34+36=70"]);
        assert_eq!(s.goal, (70, 70));
        assert_eq!(s.state_before_final.as_slice(), &[34, 36]);
        assert_eq!(s.final_nums.as_slice(), &[70]);
    }

    #[test]
    fn missing_parts_are_errors() {
        assert!(matches!(
            extract_solution_text("No solution found.\n"),
            Err(Error::NoSolution(_))
        ));
        assert!(matches!(
            extract_solution_text("Moving to Node #0\n70,70 equal: Goal Reached\n"),
            Err(Error::NoSolution(_))
        ));
        assert!(matches!(
            extract_solution_text(
                "Exploring Operation: 34+36=70, Resulting Numbers: [70]\n70,70 equal: Goal Reached\n"
            ),
            Err(Error::NoSolution(_))
        ));
        assert!(matches!(
            extract_solution_text("garbage\n"),
            Err(Error::Parse(_))
        ));
    }
}
