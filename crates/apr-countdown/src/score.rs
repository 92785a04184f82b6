//! Answer scoring by the official checker's rules: the one function that
//! decides whether a model solved a problem, for the reward, the accuracy
//! and the `score` binary alike.
//!
//! - APR (`check_solution` after `get_search_result` in the official
//!   `apr_utils.py` / `eval_apr.py`): the text is the root thread's final
//!   call (pre-spawn text, join block and continuation). The answer is the
//!   text after its second-to-last `Goal Reached`; each `Exploring
//!   Operation: X op Y=Z, Resulting Numbers: [..]` line of it is replayed
//!   from the problem's numbers (X and Y removed once each, Z the true
//!   result, the written numbers equal to the result as multisets) until the
//!   first `Goal Reached` line, where the numbers must be exactly
//!   `[target]`. Children's messages inside the join block do not count.
//! - SoS+ (`_parse_trajectory` in the official `sos_utils.py`): the last
//!   `N,N equal: Goal Reached` line, the last operation before it (its result
//!   must be the target), and the operation list of the last `Current State`
//!   of the path rewritten after the first `Goal Reached`; the list plus the
//!   final operation is replayed from the problem's numbers.
//!
//! Two departures, both stricter (see `docs/rl.md`): the official SoS+
//! replay compares integers with strings and so never removes a used
//! number; here every number is used once and the replay must end with
//! exactly `[target]`, as the APR check and the game require. Both modes
//! take the numbers from the problem, and SoS+ also requires the text's
//! first `Current State` to be the problem's (the official reads the
//! numbers from that line). Lines that do not parse elsewhere in the text
//! do not matter: parse rate is a separate metric.

use crate::problem::Problem;
use crate::rules::apply_op_multiset;
use crate::verify::same_multiset;
use apr_trace::{Num, NumList, Op, OpKind, TraceMode};
use std::fmt;

/// Why a text does not solve its problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unsolved {
    /// No answer could be read: too few `Goal Reached`, no operation, no
    /// rewritten path.
    NoAnswer(&'static str),
    /// An operation or a number list of the answer cannot be read.
    Malformed(String),
    /// The written result of an operation is not its value (or the
    /// operation is not a Countdown move: a negative difference, an inexact
    /// division).
    WrongArithmetic {
        /// 0-based step of the answer.
        step: usize,
        /// The operation as written.
        op: Op,
    },
    /// An operand is not among the numbers left (each number is used once).
    WrongNumbers {
        /// 0-based step of the answer.
        step: usize,
        /// The operation as written.
        op: Op,
    },
    /// The `Resulting Numbers` written after an operation are not what it
    /// leaves (APR).
    WrongResultingNumbers {
        /// 0-based step of the answer.
        step: usize,
        /// Numbers written.
        written: NumList,
    },
    /// The answer does not end with exactly the target.
    WrongTarget {
        /// Numbers left at the end (SoS+: the final operation's result
        /// alone when it is not the target).
        remaining: NumList,
    },
    /// The text's first `Current State` is not the problem (SoS+).
    WrongProblem,
}

impl fmt::Display for Unsolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsolved::NoAnswer(why) => write!(f, "no answer: {why}"),
            Unsolved::Malformed(what) => write!(f, "malformed answer: {what}"),
            Unsolved::WrongArithmetic { step, op } => {
                write!(f, "wrong arithmetic: step {step}: {op}")
            }
            Unsolved::WrongNumbers { step, op } => {
                write!(
                    f,
                    "wrong numbers: step {step}: an operand of {op} is not available"
                )
            }
            Unsolved::WrongResultingNumbers { step, written } => {
                write!(f, "wrong resulting numbers: step {step}: {written:?}")
            }
            Unsolved::WrongTarget { remaining } => {
                write!(f, "wrong target: the answer ends with {remaining:?}")
            }
            Unsolved::WrongProblem => write!(f, "wrong problem: the text starts elsewhere"),
        }
    }
}

/// A scored text: the answer read from it (when one could be read) and
/// whether it solves the problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Score {
    /// The operations of the answer, in order, when an answer could be read
    /// (also when it is wrong: cons@n votes on it).
    pub answer: Option<Vec<Op>>,
    /// `Ok` when solved, else why not.
    pub verdict: Result<(), Unsolved>,
}

impl Score {
    fn fail(answer: Option<Vec<Op>>, why: Unsolved) -> Score {
        Score {
            answer,
            verdict: Err(why),
        }
    }

    /// Whether the text solves the problem.
    pub fn solved(&self) -> bool {
        self.verdict.is_ok()
    }

    /// Why it does not, as text; empty when solved.
    pub fn reason(&self) -> String {
        match &self.verdict {
            Ok(()) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    /// The answer's operations as text (`["98+3=101", ...]`).
    pub fn answer_strings(&self) -> Option<Vec<String>> {
        self.answer
            .as_ref()
            .map(|ops| ops.iter().map(Op::to_string).collect())
    }
}

/// Scores `text` as the answer of a `mode` model to `problem`: for APR the
/// root thread's final call, for SoS+ the whole trace (a conditioning
/// prefix before the first `Current State` is ignored). Never panics.
pub fn score(problem: &Problem, mode: TraceMode, text: &str) -> Score {
    match mode {
        TraceMode::Apr => score_apr(problem, text),
        TraceMode::Sosp => score_sosp(problem, text),
    }
}

/// The paper's reward: 1 when [`score()`] says solved, else 0.
pub fn reward(problem: &Problem, mode: TraceMode, text: &str) -> f64 {
    if score(problem, mode, text).solved() {
        1.0
    } else {
        0.0
    }
}

const GOAL: &str = "Goal Reached";
const EXPLORING: &str = "Exploring Operation:";
const RESULTING: &str = "Resulting Numbers:";

/// `get_search_result`: the text after the second-to-last `Goal Reached`,
/// less the 13 characters of `Goal Reached\n` (after stripping).
fn apr_answer(text: &str) -> Option<&str> {
    let starts: Vec<usize> = text.match_indices(GOAL).map(|(i, _)| i).collect();
    let at = *starts.get(starts.len().checked_sub(2)?)?;
    let rest = text[at..].trim_end();
    Some(rest.char_indices().nth(13).map_or("", |(i, _)| &rest[i..]))
}

fn score_apr(problem: &Problem, text: &str) -> Score {
    let Some(answer) = apr_answer(text) else {
        return Score::fail(None, Unsolved::NoAnswer("fewer than two `Goal Reached`"));
    };
    let mut ops = Vec::new();
    let mut nums: NumList = problem.nums.iter().copied().collect();
    for line in answer.lines().map(str::trim) {
        match apr_step(line) {
            Ok(Some((op, written))) => {
                let step = ops.len();
                ops.push(op);
                if let Err(why) = replay(&mut nums, step, &op) {
                    return Score::fail(Some(ops), why);
                }
                if !same_multiset(&nums, &written) {
                    return Score::fail(
                        Some(ops),
                        Unsolved::WrongResultingNumbers { step, written },
                    );
                }
                nums = written;
            }
            Ok(None) => {}
            Err(why) => return Score::fail(Some(ops), why),
        }
        if line.contains(GOAL) {
            let verdict = if nums.as_slice() == [problem.target] {
                Ok(())
            } else {
                Err(Unsolved::WrongTarget { remaining: nums })
            };
            return Score {
                answer: Some(ops),
                verdict,
            };
        }
    }
    Score::fail(
        Some(ops),
        Unsolved::NoAnswer("no `Goal Reached` line in the answer"),
    )
}

/// The operation and written numbers of an APR answer line (the official
/// pattern `Exploring Operation:\s*(\d+)([+\-*/])(\d+)=(\d+),\s*Resulting
/// Numbers:\s*\[(.*?)\]`, searched in the line), `None` when the line has
/// none.
fn apr_step(line: &str) -> Result<Option<(Op, NumList)>, Unsolved> {
    for (i, _) in line.match_indices(EXPLORING) {
        let s = line[i + EXPLORING.len()..].trim_start();
        let Some((op, rest)) = lead_op(s) else {
            continue;
        };
        let Some(rest) = rest.strip_prefix(',') else {
            continue;
        };
        let Some(rest) = rest.trim_start().strip_prefix(RESULTING) else {
            continue;
        };
        let Some(rest) = rest.trim_start().strip_prefix('[') else {
            continue;
        };
        let Some(end) = rest.find(']') else {
            continue;
        };
        return number_list(&rest[..end], ",").map(|n| Some((op, n)));
    }
    Ok(None)
}

/// Reads `X op Y=Z` at the start of `s` (digits only, no spaces); returns
/// the operation and the text after it.
fn lead_op(s: &str) -> Option<(Op, &str)> {
    let (lhs, s) = lead_num(s)?;
    let kind = OpKind::from_symbol(*s.as_bytes().first()?)?;
    let (rhs, s) = lead_num(&s[1..])?;
    let (result, s) = lead_num(s.strip_prefix('=')?)?;
    let op = Op {
        lhs,
        kind,
        rhs,
        result,
    };
    Some((op, s))
}

/// A leading run of digits; one too large for [`Num`] reads as `Num::MAX`
/// (it then fails the arithmetic, as the official check would).
fn lead_num(s: &str) -> Option<(Num, &str)> {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return None;
    }
    Some((s[..n].parse().unwrap_or(Num::MAX), &s[n..]))
}

/// A written list of numbers (`5, 50, 52`) split on `sep`, each item
/// trimmed; an empty list is empty. Any other item is malformed (the
/// official `int()` raises, and the check fails).
fn number_list(s: &str, sep: &str) -> Result<NumList, Unsolved> {
    if s.trim().is_empty() {
        return Ok(NumList::new());
    }
    s.split(sep)
        .map(|x| {
            let x = x.trim();
            x.parse::<Num>()
                .map_err(|_| Unsolved::Malformed(format!("number `{x}`")))
        })
        .collect()
}

/// Applies `op` to `nums`: the arithmetic must be right and both operands
/// present (each used once).
fn replay(nums: &mut NumList, step: usize, op: &Op) -> Result<(), Unsolved> {
    if !op.is_correct() {
        return Err(Unsolved::WrongArithmetic { step, op: *op });
    }
    *nums = apply_op_multiset(nums, op).ok_or(Unsolved::WrongNumbers { step, op: *op })?;
    Ok(())
}

/// Start of the last `\d+,\d+ equal: Goal Reached` match.
fn last_goal_line(text: &str) -> Option<usize> {
    const TAIL: &str = " equal: Goal Reached";
    let mut last = None;
    for (i, _) in text.match_indices(TAIL) {
        let b = text.as_bytes();
        let digits_back = |end: usize| {
            b[..end]
                .iter()
                .rev()
                .take_while(|c| c.is_ascii_digit())
                .count()
        };
        let d2 = digits_back(i);
        if d2 == 0 || i < d2 + 1 || b[i - d2 - 1] != b',' {
            continue;
        }
        let d1 = digits_back(i - d2 - 1);
        if d1 > 0 {
            last = Some(i - d2 - 1 - d1);
        }
    }
    last
}

/// The operation strings of `Exploring Operation: (.*?=\d+), Resulting
/// Numbers: \[(.*?)\]` matches in `text`, in order.
fn sosp_operations(text: &str) -> Vec<&str> {
    const OPEN: &str = "Exploring Operation: ";
    const MID: &str = ", Resulting Numbers: [";
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(k) = text[from..].find(OPEN) {
        let start = from + k + OPEN.len();
        let line = &text[start..text[start..].find('\n').map_or(text.len(), |e| start + e)];
        let found = line.match_indices(MID).find_map(|(m, _)| {
            let op = &line[..m];
            let digits = op.bytes().rev().take_while(u8::is_ascii_digit).count();
            let ok = digits > 0 && op[..op.len() - digits].ends_with('=');
            let close = line[m + MID.len()..].find(']')?;
            ok.then_some((op, m + MID.len() + close + 1))
        });
        match found {
            Some((op, end)) => {
                out.push(op);
                from = start + end;
            }
            None => from = start,
        }
    }
    out
}

/// An operation string of the SoS+ answer (`53-22=31`, quotes removed).
fn sosp_op(s: &str) -> Result<Op, Unsolved> {
    match lead_op(s) {
        Some((op, "")) => Ok(op),
        _ => Err(Unsolved::Malformed(format!("operation `{s}`"))),
    }
}

fn score_sosp(problem: &Problem, text: &str) -> Score {
    let Some(start) = text.find("Current State") else {
        return Score::fail(None, Unsolved::NoAnswer("no `Current State`"));
    };
    let text = &text[start..];
    let first = text.trim().lines().next().unwrap_or("");
    let Some(s) = first.strip_prefix("Current State: ") else {
        return Score::fail(None, Unsolved::NoAnswer("no initial state"));
    };
    let initial = lead_num(s).and_then(|(t, rest)| {
        let body = rest.strip_prefix(":[")?;
        Some((t, &body[..body.find(']')?]))
    });
    let Some((target, nums)) = initial else {
        return Score::fail(None, Unsolved::NoAnswer("no initial state"));
    };
    match number_list(nums, ", ") {
        Ok(n) if target == problem.target && same_multiset(&n, &problem.nums) => {}
        Ok(_) => return Score::fail(None, Unsolved::WrongProblem),
        Err(e) => return Score::fail(None, e),
    }
    let Some(goal) = last_goal_line(text) else {
        return Score::fail(None, Unsolved::NoAnswer("no `equal: Goal Reached` line"));
    };
    let before = &text[..goal];
    let Some(&final_op) = sosp_operations(before).last() else {
        return Score::fail(None, Unsolved::NoAnswer("no operation before the goal"));
    };
    let final_op = match sosp_op(final_op) {
        Ok(op) => op,
        Err(e) => return Score::fail(None, e),
    };
    if final_op.result != problem.target {
        let remaining = NumList::from_slice(&[final_op.result]);
        return Score::fail(Some(vec![final_op]), Unsolved::WrongTarget { remaining });
    }
    // The path rewritten after the first `Goal Reached`, up to the next.
    let Some(core) = before.split("Goal Reached\n").nth(1) else {
        return Score::fail(None, Unsolved::NoAnswer("no rewritten path"));
    };
    let Some(list) = last_state_ops(core) else {
        return Score::fail(
            None,
            Unsolved::NoAnswer("no `Current State` in the rewritten path"),
        );
    };
    let mut ops = Vec::new();
    for s in list.split(", ").filter(|s| !s.is_empty()) {
        match sosp_op(&s.replace('\'', "")) {
            Ok(op) => ops.push(op),
            Err(e) => return Score::fail(Some(ops), e),
        }
    }
    ops.push(final_op);
    let mut nums: NumList = problem.nums.iter().copied().collect();
    for (step, op) in ops.iter().enumerate() {
        if let Err(why) = replay(&mut nums, step, op) {
            return Score::fail(Some(ops), why);
        }
    }
    let verdict = if nums.as_slice() == [problem.target] {
        Ok(())
    } else {
        Err(Unsolved::WrongTarget { remaining: nums })
    };
    Score {
        answer: Some(ops),
        verdict,
    }
}

/// The operation list of the last `Current State: \d+:\[.*?\], Operations:
/// \[(.*?)\]` match of `text`.
fn last_state_ops(text: &str) -> Option<&str> {
    const STATE: &str = "Current State: ";
    const OPS: &str = "], Operations: [";
    text.rmatch_indices(STATE).find_map(|(i, _)| {
        let line = &text[i + STATE.len()..];
        let line = &line[..line.find('\n').unwrap_or(line.len())];
        let (_, rest) = lead_num(line)?;
        let rest = rest.strip_prefix(":[")?;
        let body = &rest[rest.find(OPS)? + OPS.len()..];
        Some(&body[..body.find(']')?])
    })
}

#[cfg(test)]
mod tests;
