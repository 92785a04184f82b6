//! A strict parser for the trace grammar. Every input, including arbitrary
//! model output, gives either a typed [`Trace`] or a [`ParseError`] naming
//! the line and what was wrong; it never panics.

use crate::line::{Conditioning, Line, Trace};
use crate::types::{NodeId, Num, NumList, Op, OpKind, OpList};
use smallvec::SmallVec;
use std::fmt;

/// What was wrong with the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// The input was empty.
    EmptyInput,
    /// The input is not valid UTF-8 (byte offset of the first bad byte).
    NotUtf8 {
        /// Offset of the first invalid byte.
        valid_up_to: usize,
    },
    /// The last line has no terminating `\n` (truncated output).
    MissingFinalNewline,
    /// The line starts like no line of the grammar.
    UnknownLine,
    /// The line starts like a known line but breaks its form.
    Malformed {
        /// What was expected at `column`.
        expected: &'static str,
        /// 0-based byte column in the line.
        column: usize,
    },
}

/// A parse failure: where (1-based line number) and why, with the line's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number (0 for errors about the whole input).
    pub line: usize,
    /// The kind of failure.
    pub kind: ParseErrorKind,
    /// The offending line, cut to 120 characters.
    pub text: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ParseErrorKind::EmptyInput => write!(f, "empty trace"),
            ParseErrorKind::NotUtf8 { valid_up_to } => {
                write!(
                    f,
                    "trace is not UTF-8 (invalid byte at offset {valid_up_to})"
                )
            }
            ParseErrorKind::MissingFinalNewline => write!(
                f,
                "line {}: truncated line without final newline: {:?}",
                self.line, self.text
            ),
            ParseErrorKind::UnknownLine => {
                write!(f, "line {}: not a trace line: {:?}", self.line, self.text)
            }
            ParseErrorKind::Malformed { expected, column } => write!(
                f,
                "line {}, column {}: expected {}: {:?}",
                self.line, column, expected, self.text
            ),
        }
    }
}

impl std::error::Error for ParseError {}

struct Bad {
    expected: &'static str,
    column: usize,
}

type R<T> = Result<T, Bad>;

struct Cur<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Cur<'a> {
    fn bad<T>(&self, expected: &'static str) -> R<T> {
        Err(Bad {
            expected,
            column: self.pos,
        })
    }

    fn eat(&mut self, lit: &str) -> bool {
        if self.s[self.pos..].starts_with(lit.as_bytes()) {
            self.pos += lit.len();
            true
        } else {
            false
        }
    }

    fn lit(&mut self, lit: &'static str) -> R<()> {
        if self.eat(lit) {
            Ok(())
        } else {
            self.bad(lit)
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn num(&mut self) -> R<Num> {
        let start = self.pos;
        let mut v: Num = 0;
        while let Some(c) = self.peek() {
            if !c.is_ascii_digit() {
                break;
            }
            if self.pos > start && self.s[start] == b'0' {
                return Err(Bad {
                    expected: "a number without leading zeros",
                    column: start,
                });
            }
            v = match v
                .checked_mul(10)
                .and_then(|v| v.checked_add(Num::from(c - b'0')))
            {
                Some(v) => v,
                None => {
                    return Err(Bad {
                        expected: "a number below 2^64",
                        column: start,
                    })
                }
            };
            self.pos += 1;
        }
        if self.pos == start {
            return self.bad("a number");
        }
        Ok(v)
    }

    fn small(&mut self) -> R<u32> {
        let start = self.pos;
        let v = self.num()?;
        u32::try_from(v).map_err(|_| Bad {
            expected: "a number below 2^32",
            column: start,
        })
    }

    fn nums(&mut self) -> R<NumList> {
        self.lit("[")?;
        let mut v = NumList::new();
        if self.eat("]") {
            return Ok(v);
        }
        loop {
            v.push(self.num()?);
            if self.eat("]") {
                return Ok(v);
            }
            if !self.eat(", ") {
                return self.bad("', ' or ']'");
            }
        }
    }

    fn op(&mut self) -> R<Op> {
        let lhs = self.num()?;
        let kind = match self.peek().and_then(OpKind::from_symbol) {
            Some(k) => k,
            None => return self.bad("an operator (+ - * /)"),
        };
        self.pos += 1;
        let rhs = self.num()?;
        self.lit("=")?;
        let result = self.num()?;
        Ok(Op {
            lhs,
            kind,
            rhs,
            result,
        })
    }

    fn ops(&mut self) -> R<OpList> {
        self.lit("[")?;
        let mut v = OpList::new();
        if self.eat("]") {
            return Ok(v);
        }
        loop {
            self.lit("'")?;
            v.push(self.op()?);
            self.lit("'")?;
            if self.eat("]") {
                return Ok(v);
            }
            if !self.eat(", ") {
                return self.bad("', ' or ']'");
            }
        }
    }

    fn id(&mut self) -> R<NodeId> {
        let mut v = SmallVec::new();
        v.push(self.small()?);
        while self.peek() == Some(b',') && self.s.get(self.pos + 1).is_some_and(u8::is_ascii_digit)
        {
            self.pos += 1;
            v.push(self.small()?);
        }
        Ok(NodeId(v))
    }

    fn end(&self) -> R<()> {
        if self.pos == self.s.len() {
            Ok(())
        } else {
            self.bad("end of line")
        }
    }
}

fn parse_line_inner(c: &mut Cur<'_>) -> R<Option<Line>> {
    let line = if c.eat("Current State: ") {
        let target = c.num()?;
        c.lit(":")?;
        let nums = c.nums()?;
        c.lit(", Operations: ")?;
        let ops = c.ops()?;
        Line::CurrentState { target, nums, ops }
    } else if c.eat("Exploring Operation: ") {
        let op = c.op()?;
        c.lit(", Resulting Numbers: ")?;
        let nums = c.nums()?;
        Line::Exploring { op, nums }
    } else if c.eat("Generated Node #") {
        let id = c.id()?;
        c.lit(": ")?;
        if c.peek() == Some(b'[') {
            let index = match id.0.as_slice() {
                [i] => *i,
                _ => return c.bad("a single node number before a target-less state"),
            };
            let nums = c.nums()?;
            c.lit(" from Operation: ")?;
            let op = c.op()?;
            Line::PathNode { index, nums, op }
        } else {
            let target = c.num()?;
            c.lit(":")?;
            let nums = c.nums()?;
            c.lit(" Operation: ")?;
            let op = c.op()?;
            Line::Generated {
                id,
                target,
                nums,
                op,
            }
        }
    } else if c.eat("Moving to Node #") {
        Line::MovingTo { id: c.id()? }
    } else if c.eat("No solution found in sub search") {
        Line::NoSolutionInSubSearch
    } else if c.eat("No solution found.") {
        Line::NoSolutionFound
    } else if c.eat("Start Sub Search at level ") {
        let level = c.small()?;
        c.lit(": Moving to Node #")?;
        Line::StartSubSearch { level, id: c.id()? }
    } else if c.eat("Exit Sub Search at level ") {
        Line::ExitSubSearch { level: c.small()? }
    } else if c.eat("<Calling Sub Searches>") {
        Line::CallingSubSearches
    } else if c.eat("<Start Sub Search ") {
        let index = c.small()?;
        c.lit(" at level ")?;
        let level = c.small()?;
        c.lit("> Moving to Node #")?;
        Line::SpawnChild {
            index,
            level,
            id: c.id()?,
        }
    } else if c.eat("<End Calling Sub Searches>") {
        Line::EndCallingSubSearches
    } else if c.eat("<Sub Searches>") {
        Line::SubSearches
    } else if c.eat("<Goal Reached in Sub Search ") || c.eat("<No Solution in Sub Search ") {
        let goal = c.s[1] == b'G';
        let index = c.small()?;
        c.lit(" at level ")?;
        let level = c.small()?;
        c.lit(" at Node #")?;
        let id = c.id()?;
        c.lit(">")?;
        if goal {
            Line::JoinGoal { index, level, id }
        } else {
            Line::JoinNoSolution { index, level, id }
        }
    } else if c.eat("<End Sub Searches>") {
        Line::EndSubSearches
    } else if c.peek().is_some_and(|b| b.is_ascii_digit()) {
        let value = c.num()?;
        c.lit(",")?;
        let target = c.num()?;
        if c.eat(" equal: Goal Reached") {
            Line::GoalReached { value, target }
        } else if c.eat(" unequal: No Solution") {
            Line::Unequal { value, target }
        } else {
            return c.bad("' equal: Goal Reached' or ' unequal: No Solution'");
        }
    } else {
        return Ok(None);
    };
    c.end()?;
    Ok(Some(line))
}

fn excerpt(s: &str) -> String {
    s.chars().take(120).collect()
}

/// Parses one line's text (without its `\n`).
pub fn parse_line(text: &str) -> Result<Line, ParseError> {
    parse_line_numbered(text, 1)
}

fn parse_line_numbered(text: &str, line_no: usize) -> Result<Line, ParseError> {
    let mut c = Cur {
        s: text.as_bytes(),
        pos: 0,
    };
    match parse_line_inner(&mut c) {
        Ok(Some(l)) => Ok(l),
        Ok(None) => Err(ParseError {
            line: line_no,
            kind: ParseErrorKind::UnknownLine,
            text: excerpt(text),
        }),
        Err(b) => Err(ParseError {
            line: line_no,
            kind: ParseErrorKind::Malformed {
                expected: b.expected,
                column: b.column,
            },
            text: excerpt(text),
        }),
    }
}

/// Splits a conditioning prefix off the start of a root prompt.
fn split_prefix(text: &str) -> Result<(Option<Conditioning>, &str), ParseError> {
    for (lit, make) in [
        (
            "Sub Call Budget: ",
            Conditioning::SubCallBudget as fn(u32) -> Conditioning,
        ),
        ("Token Budget: ", Conditioning::TokenBudget),
    ] {
        if let Some(rest) = text.strip_prefix(lit) {
            let mut c = Cur {
                s: rest.as_bytes(),
                pos: 0,
            };
            let n = c.small().and_then(|n| c.lit(" ").map(|_| n));
            return match n {
                Ok(n) => Ok((Some(make(n)), &rest[c.pos..])),
                Err(b) => Err(ParseError {
                    line: 1,
                    kind: ParseErrorKind::Malformed {
                        expected: b.expected,
                        column: b.column + lit.len(),
                    },
                    text: excerpt(text.lines().next().unwrap_or("")),
                }),
            };
        }
    }
    Ok((None, text))
}

/// Parses a whole call's text: an optional conditioning prefix and
/// `\n`-terminated lines. Strict: the text must end with `\n`.
pub fn parse_trace(text: &str) -> Result<Trace, ParseError> {
    if text.is_empty() {
        return Err(ParseError {
            line: 0,
            kind: ParseErrorKind::EmptyInput,
            text: String::new(),
        });
    }
    let (prefix, body) = split_prefix(text)?;
    let mut lines = Vec::with_capacity(body.len() / 48 + 1);
    let mut rest = body;
    let mut no = 0;
    while !rest.is_empty() {
        no += 1;
        let Some(nl) = rest.find('\n') else {
            return Err(ParseError {
                line: no,
                kind: ParseErrorKind::MissingFinalNewline,
                text: excerpt(rest),
            });
        };
        lines.push(parse_line_numbered(&rest[..nl], no)?);
        rest = &rest[nl + 1..];
    }
    Ok(Trace { prefix, lines })
}

/// Parses a trace given as bytes, reporting non-UTF-8 input as an error.
pub fn parse_trace_bytes(bytes: &[u8]) -> Result<Trace, ParseError> {
    match std::str::from_utf8(bytes) {
        Ok(s) => parse_trace(s),
        Err(e) => Err(ParseError {
            line: 0,
            kind: ParseErrorKind::NotUtf8 {
                valid_up_to: e.valid_up_to(),
            },
            text: String::new(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(text: &str) -> ParseErrorKind {
        parse_trace(text).unwrap_err().kind
    }

    #[test]
    fn parses_and_rerenders_lines() {
        let text = "Sub Call Budget: 3 Moving to Node #0\n\
Current State: 70:[98, 3, 34, 65], Operations: []\n\
Exploring Operation: 98-65=33, Resulting Numbers: [3, 34, 33]\n\
Generated Node #0,3: 70:[3, 34, 33] Operation: 98-65=33\n\
<Calling Sub Searches>\n\
<Start Sub Search 0 at level 1> Moving to Node #0,3\n\
<End Calling Sub Searches>\n";
        let t = parse_trace(text).unwrap();
        assert_eq!(t.prefix, Some(Conditioning::SubCallBudget(3)));
        assert_eq!(t.lines.len(), 7);
        assert_eq!(t.render(), text);
        assert_eq!(t.spawn_block_start(), Some(4));
    }

    #[test]
    fn errors_are_typed() {
        assert_eq!(kind(""), ParseErrorKind::EmptyInput);
        assert_eq!(
            kind("Moving to Node #0\nCurrent State: 7"),
            ParseErrorKind::MissingFinalNewline
        );
        assert_eq!(kind("hello\n"), ParseErrorKind::UnknownLine);
        assert!(matches!(
            kind("Exploring Operation: 3%4=1, Resulting Numbers: [1]\n"),
            ParseErrorKind::Malformed { column: 22, .. }
        ));
        assert!(matches!(
            kind("Moving to Node #0\nMoving to Node #x\n"),
            ParseErrorKind::Malformed { column: 16, .. }
        ));
        assert!(matches!(
            kind("Current State: 70:[1, 99999999999999999999999], Operations: []\n"),
            ParseErrorKind::Malformed {
                expected: "a number below 2^64",
                ..
            }
        ));
        assert!(matches!(
            kind("Current State: 70:[01], Operations: []\n"),
            ParseErrorKind::Malformed { .. }
        ));
        assert!(matches!(
            kind("Moving to Node #0 \n"),
            ParseErrorKind::Malformed {
                expected: "end of line",
                ..
            }
        ));
        let e = parse_trace("Moving to Node #0\n12,70 equal\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().contains("line 2"));
        assert!(matches!(
            parse_trace_bytes(b"Moving to Node #0\n\xff\n")
                .unwrap_err()
                .kind,
            ParseErrorKind::NotUtf8 { valid_up_to: 18 }
        ));
        assert!(matches!(
            kind("Sub Call Budget: x Moving to Node #0\n"),
            ParseErrorKind::Malformed { column: 17, .. }
        ));
    }

    #[test]
    fn path_node_needs_single_index() {
        assert!(parse_line("Generated Node #2: [34, 65, 101] from Operation: 98+3=101").is_ok());
        assert!(parse_line("Generated Node #0,2: [34, 65] from Operation: 98+3=101").is_err());
    }
}
