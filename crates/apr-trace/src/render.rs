//! Rendering typed lines to the reference grammar, byte for byte.
//!
//! Rendering is on the hot path of data generation, so it appends to a
//! [`Sink`] directly (no `fmt` machinery) and formats numbers with `itoa`.
//! One formatter serves owned lines ([`Line`]) and borrowed ones
//! ([`LineRef`], what a solver's arena lends), into plain text or straight
//! into a JSON string ([`JsonEscaped`]).

use crate::line::{Conditioning, Line, LineRef, Trace};
use crate::types::{NodeId, Num, Op};
use std::fmt;

#[inline]
/// Tokens of a number: one per group of up to three digits (the lexer
/// reads `[0-9]{1,3}` greedily).
pub(crate) fn num_tokens(n: u64) -> usize {
    if n < 1000 {
        1
    } else if n < 1_000_000 {
        2
    } else {
        (n.ilog10() as usize + 1).div_ceil(3)
    }
}

/// Where rendered text goes.
pub trait Sink {
    /// Appends text that contains no line end.
    fn put(&mut self, s: &str);
    /// Appends one ASCII byte.
    fn put_ascii(&mut self, b: u8);
    /// Ends a line.
    fn newline(&mut self);
    /// Counts `n` tokens of what was just written (the renderer calls this
    /// beside every piece it writes, so a sink can count tokens in the same
    /// pass; see [`TraceTokenizer::count_line_ref`](crate::TraceTokenizer::count_line_ref)).
    #[inline(always)]
    fn tokens(&mut self, _n: usize) {}
    /// Appends the decimal digits of `n`, which is below 1000.
    #[inline(always)]
    fn put_small(&mut self, n: u16) {
        debug_assert!(n < 1000);
        if n >= 100 {
            self.put_ascii(b'0' + (n / 100) as u8);
        }
        if n >= 10 {
            self.put_ascii(b'0' + (n / 10 % 10) as u8);
        }
        self.put_ascii(b'0' + (n % 10) as u8);
    }
}

/// The digits of every number below 1000, left-aligned in four bytes, and
/// their count in the last byte.
static SMALL_DIGITS: [[u8; 4]; 1000] = {
    let mut t = [[0u8; 4]; 1000];
    let mut n = 0;
    while n < 1000 {
        let (h, d, u) = ((n / 100) as u8, (n / 10 % 10) as u8, (n % 10) as u8);
        t[n] = if n >= 100 {
            [b'0' + h, b'0' + d, b'0' + u, 3]
        } else if n >= 10 {
            [b'0' + d, b'0' + u, 0, 2]
        } else {
            [b'0' + u, 0, 0, 1]
        };
        n += 1;
    }
    t
};

impl Sink for String {
    #[inline]
    fn put(&mut self, s: &str) {
        self.push_str(s);
    }
    #[inline]
    fn put_ascii(&mut self, b: u8) {
        debug_assert!(b.is_ascii());
        self.push(b as char);
    }
    #[inline]
    fn newline(&mut self) {
        self.push('\n');
    }
}

/// A sink that writes the inside of a JSON string: the renderer writes no
/// character that JSON escapes except line ends, which become `\n`.
pub struct JsonEscaped<'a>(pub &'a mut Vec<u8>);

impl Sink for JsonEscaped<'_> {
    #[inline]
    fn put(&mut self, s: &str) {
        debug_assert!(!s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\'));
        self.0.extend_from_slice(s.as_bytes());
    }
    #[inline]
    fn put_ascii(&mut self, b: u8) {
        debug_assert!(b.is_ascii() && b >= 0x20 && b != b'"' && b != b'\\');
        self.0.push(b);
    }
    #[inline]
    fn newline(&mut self) {
        self.0.extend_from_slice(b"\\n");
    }
}

/// A sink over a slice known to be large enough: each write is one bounds
/// check and a few moves, with the position kept in a register.
struct Cursor<'a, const JSON: bool> {
    buf: &'a mut [u8],
    pos: usize,
    tokens: usize,
}

impl<const JSON: bool> Sink for Cursor<'_, JSON> {
    #[inline(always)]
    fn put(&mut self, s: &str) {
        let end = self.pos + s.len();
        self.buf[self.pos..end].copy_from_slice(s.as_bytes());
        self.pos = end;
    }
    #[inline(always)]
    fn put_ascii(&mut self, b: u8) {
        self.buf[self.pos] = b;
        self.pos += 1;
    }
    /// One four-byte copy from the digit table: the bytes past the digits
    /// land in the bound reserved for the line and are overwritten next.
    #[inline(always)]
    fn put_small(&mut self, n: u16) {
        let d = SMALL_DIGITS[n as usize];
        self.buf[self.pos..self.pos + 4].copy_from_slice(&d);
        self.pos += d[3] as usize;
    }
    #[inline(always)]
    fn newline(&mut self) {
        if JSON {
            self.put("\\n");
        } else {
            self.put_ascii(b'\n');
        }
    }
    #[inline(always)]
    fn tokens(&mut self, n: usize) {
        self.tokens += n;
    }
}

/// An upper bound on the bytes of a line (newline included, JSON-escaped or
/// not): at most 128 bytes of fixed text, and at most 24 bytes for each
/// number written with its separators (a `u64` has at most 20 digits; an
/// operation is three numbers and at most 8 more bytes).
fn line_bound(line: &LineRef<'_>) -> usize {
    let numbers = match line {
        LineRef::CurrentState { nums, ops, .. } => nums.len() + 3 * ops.len(),
        LineRef::Exploring { nums, .. } | LineRef::PathNode { nums, .. } => nums.len() + 3,
        LineRef::Generated { id, nums, .. } => id.0.len() + nums.len() + 3,
        LineRef::MovingTo { id }
        | LineRef::StartSubSearch { id, .. }
        | LineRef::SpawnChild { id, .. }
        | LineRef::JoinGoal { id, .. }
        | LineRef::JoinNoSolution { id, .. } => id.0.len(),
        _ => 0,
    };
    128 + 24 * (numbers + 3)
}

/// A sink appending to a byte vector, JSON-escaped or not, and counting
/// tokens (the slow path of [`LineWriter`], for lines longer than its
/// scratch buffer).
struct Bytes<'a, const JSON: bool>(&'a mut Vec<u8>, usize);

impl<const JSON: bool> Sink for Bytes<'_, JSON> {
    fn tokens(&mut self, n: usize) {
        self.1 += n;
    }
    fn put(&mut self, s: &str) {
        self.0.extend_from_slice(s.as_bytes());
    }
    fn put_ascii(&mut self, b: u8) {
        self.0.push(b);
    }
    fn newline(&mut self) {
        self.0
            .extend_from_slice(if JSON { b"\\n".as_slice() } else { b"\n" });
    }
}

/// Bytes of [`LineWriter`]'s scratch buffer.
const SCRATCH: usize = 4096;

std::thread_local! {
    /// Each thread's scratch buffer for [`LineWriter`], zeroed once and
    /// reused, so that making a writer costs no zeroing.
    static SCRATCH_BUF: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Appends lines to a byte buffer, as plain text (`LineWriter::<false>`)
/// or as the inside of a JSON string (`LineWriter::<true>`, line ends
/// written `\n`). This is the fast path of rendering: lines are written
/// into a scratch buffer (one per thread, reused), each after checking once
/// that an upper bound of its length fits, and the scratch buffer is
/// appended to the output when full and when the writer is dropped. The
/// bytes are those of [`push_line_ref`] into a [`String`] or a
/// [`JsonEscaped`] sink.
pub struct LineWriter<'a, const JSON: bool> {
    out: &'a mut Vec<u8>,
    buf: Vec<u8>,
    pos: usize,
}

impl<'a, const JSON: bool> LineWriter<'a, JSON> {
    /// A writer appending to `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        let mut buf = SCRATCH_BUF.take();
        if buf.len() < SCRATCH {
            buf = vec![0; SCRATCH];
        }
        LineWriter { out, buf, pos: 0 }
    }

    /// Appends one line and its line end; returns the line's tokens (its
    /// [`TraceTokenizer::count_line_ref`](crate::TraceTokenizer::count_line_ref),
    /// counted as it is written).
    #[inline]
    pub fn line(&mut self, line: LineRef<'_>) -> usize {
        let bound = line_bound(&line);
        if self.pos + bound > SCRATCH {
            self.flush();
            if bound > SCRATCH {
                let mut b = Bytes::<JSON>(self.out, 0);
                push_line_ref(&mut b, line);
                return b.1;
            }
        }
        let mut c = Cursor::<JSON> {
            buf: &mut self.buf[..SCRATCH],
            pos: self.pos,
            tokens: 0,
        };
        push_line_ref(&mut c, line);
        self.pos = c.pos;
        c.tokens
    }

    fn flush(&mut self) {
        self.out.extend_from_slice(&self.buf[..self.pos]);
        self.pos = 0;
    }
}

impl<const JSON: bool> Drop for LineWriter<'_, JSON> {
    fn drop(&mut self) {
        self.flush();
        SCRATCH_BUF.set(std::mem::take(&mut self.buf));
    }
}

#[inline(always)]
fn push_num(out: &mut impl Sink, n: impl Into<u64>) {
    let n: u64 = n.into();
    // Most numbers of a trace are below 1000: one token.
    if n < 1000 {
        out.put_small(n as u16);
        out.tokens(1);
    } else {
        out.put(itoa::Buffer::new().format(n));
        out.tokens(num_tokens(n));
    }
}

#[inline(always)]
fn push_op(out: &mut impl Sink, op: &Op) {
    // The symbol and `=`, and the numbers.
    out.tokens(2);
    push_num(out, op.lhs);
    out.put(op.kind.symbol_str());
    push_num(out, op.rhs);
    out.put("=");
    push_num(out, op.result);
}

/// Appends a Python-style list of numbers: `[22, 26, 31]`.
#[inline(always)]
pub fn push_nums(out: &mut impl Sink, nums: &[Num]) {
    // `[]` is one token; otherwise `[`, `]`, a `, ` between numbers, and the numbers.
    out.tokens(if nums.is_empty() { 1 } else { nums.len() + 1 });
    out.put("[");
    for (i, n) in nums.iter().enumerate() {
        if i > 0 {
            out.put(", ");
        }
        push_num(out, *n);
    }
    out.put("]");
}

/// Appends a Python-style list of operation strings: `['53-22=31', '26+5=31']`.
#[inline(always)]
pub fn push_ops(out: &mut impl Sink, ops: &[Op]) {
    // `[]` is one token; otherwise `['`, `']`, a `', '` between operations,
    // and the operations.
    out.tokens(if ops.is_empty() { 1 } else { ops.len() + 1 });
    out.put("[");
    for (i, op) in ops.iter().enumerate() {
        out.put(if i > 0 { ", '" } else { "'" });
        push_op(out, op);
        out.put("'");
    }
    out.put("]");
}

/// Appends a node id: `0,2,1`.
#[inline(always)]
pub fn push_id(out: &mut impl Sink, id: &NodeId) {
    // A `,` between parts, and the parts.
    out.tokens(id.0.len().saturating_sub(1));
    for (i, p) in id.0.iter().enumerate() {
        if i > 0 {
            out.put(",");
        }
        push_num(out, *p);
    }
}

/// Appends the text of a conditioning prefix, trailing space included.
pub fn push_conditioning(out: &mut impl Sink, c: Conditioning) {
    // The phrase and the space, and the number.
    out.tokens(2);
    match c {
        Conditioning::SubCallBudget(n) => {
            out.put("Sub Call Budget: ");
            push_num(out, n);
        }
        Conditioning::TokenBudget(b) => {
            out.put("Token Budget: ");
            push_num(out, b);
        }
    }
    out.put(" ");
}

/// Appends one line's text followed by `\n`.
pub fn push_line(out: &mut impl Sink, line: &Line) {
    push_line_ref(out, line.as_ref());
}

/// Appends one borrowed line's text followed by `\n`.
pub fn push_line_ref(out: &mut impl Sink, line: LineRef<'_>) {
    match line {
        LineRef::CurrentState { target, nums, ops } => {
            // Phrase, `:`, phrase, `\n`.
            out.tokens(4);
            out.put("Current State: ");
            push_num(out, target);
            out.put(":");
            push_nums(out, nums);
            out.put(", Operations: ");
            push_ops(out, ops);
        }
        LineRef::Exploring { op, nums } => {
            // Two phrases, `\n`.
            out.tokens(3);
            out.put("Exploring Operation: ");
            push_op(out, op);
            out.put(", Resulting Numbers: ");
            push_nums(out, nums);
        }
        LineRef::Generated {
            id,
            target,
            nums,
            op,
        } => {
            // Phrase, `: `, `:`, phrase, `\n`.
            out.tokens(5);
            out.put("Generated Node #");
            push_id(out, id);
            out.put(": ");
            push_num(out, target);
            out.put(":");
            push_nums(out, nums);
            out.put(" Operation: ");
            push_op(out, op);
        }
        LineRef::PathNode { index, nums, op } => {
            // Phrase, `: `, phrase, `\n`.
            out.tokens(4);
            out.put("Generated Node #");
            push_num(out, index);
            out.put(": ");
            push_nums(out, nums);
            out.put(" from Operation: ");
            push_op(out, op);
        }
        LineRef::MovingTo { id } => {
            // Phrase, `\n`.
            out.tokens(2);
            out.put("Moving to Node #");
            push_id(out, id);
        }
        LineRef::GoalReached { value, target } => {
            // `,`, phrase, `\n`.
            out.tokens(3);
            push_num(out, value);
            out.put(",");
            push_num(out, target);
            out.put(" equal: Goal Reached");
        }
        LineRef::Unequal { value, target } => {
            // `,`, phrase, `\n`.
            out.tokens(3);
            push_num(out, value);
            out.put(",");
            push_num(out, target);
            out.put(" unequal: No Solution");
        }
        LineRef::NoSolutionFound => {
            // Phrase, `\n`.
            out.tokens(2);
            out.put("No solution found.");
        }
        LineRef::StartSubSearch { level, id } => {
            // Two phrases, `\n`.
            out.tokens(3);
            out.put("Start Sub Search at level ");
            push_num(out, level);
            out.put(": Moving to Node #");
            push_id(out, id);
        }
        LineRef::ExitSubSearch { level } => {
            // Phrase, `\n`.
            out.tokens(2);
            out.put("Exit Sub Search at level ");
            push_num(out, level);
        }
        LineRef::NoSolutionInSubSearch => {
            // Phrase, `\n`.
            out.tokens(2);
            out.put("No solution found in sub search");
        }
        LineRef::CallingSubSearches => {
            // Phrase, `\n`.
            out.tokens(2);
            out.put("<Calling Sub Searches>");
        }
        LineRef::SpawnChild { index, level, id } => {
            // Three phrases, `\n`.
            out.tokens(4);
            out.put("<Start Sub Search ");
            push_num(out, index);
            out.put(" at level ");
            push_num(out, level);
            out.put("> Moving to Node #");
            push_id(out, id);
        }
        LineRef::EndCallingSubSearches => {
            // Phrase, `\n`.
            out.tokens(2);
            out.put("<End Calling Sub Searches>");
        }
        LineRef::SubSearches => {
            // Phrase, `\n`.
            out.tokens(2);
            out.put("<Sub Searches>");
        }
        LineRef::JoinGoal { index, level, id } => {
            // Three phrases, `>`, `\n`.
            out.tokens(5);
            out.put("<Goal Reached in Sub Search ");
            push_num(out, index);
            out.put(" at level ");
            push_num(out, level);
            out.put(" at Node #");
            push_id(out, id);
            out.put(">");
        }
        LineRef::JoinNoSolution { index, level, id } => {
            // Three phrases, `>`, `\n`.
            out.tokens(5);
            out.put("<No Solution in Sub Search ");
            push_num(out, index);
            out.put(" at level ");
            push_num(out, level);
            out.put(" at Node #");
            push_id(out, id);
            out.put(">");
        }
        LineRef::EndSubSearches => {
            // Phrase, `\n`.
            out.tokens(2);
            out.put("<End Sub Searches>");
        }
    }
    out.newline();
}

/// Appends every line of `lines`.
pub fn push_lines(out: &mut String, lines: &[Line]) {
    for l in lines {
        push_line(out, l);
    }
}

impl Trace {
    /// Appends the full text (prefix and lines) to `out`.
    pub fn render_into(&self, out: &mut String) {
        if let Some(c) = self.prefix {
            push_conditioning(out, c);
        }
        push_lines(out, &self.lines);
    }

    /// The full text of this call.
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(self.lines.len() * 64);
        self.render_into(&mut s);
        s
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(64);
        push_line(&mut s, self);
        s.pop();
        f.write_str(&s)
    }
}

#[cfg(test)]
mod tests;
