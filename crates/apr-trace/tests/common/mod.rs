//! Helpers of the malformed-input tests (`malformed.rs`,
//! `malformed_spawn.rs`): a parent's pre-spawn text, spawn blocks over it,
//! and the check of a parse error's line, kind and message.
#![allow(dead_code)]

use apr_trace::{parse_trace, ParseError, ParseErrorKind};

/// A parent thread's pre-spawn text (6 lines) that generates nodes `0,0` and `0,1`.
pub const PARENT: &str = "Moving to Node #0\n\
Current State: 70:[98, 3, 34, 65], Operations: []\n\
Exploring Operation: 98-65=33, Resulting Numbers: [3, 34, 33]\n\
Generated Node #0,0: 70:[3, 34, 33] Operation: 98-65=33\n\
Exploring Operation: 3+34=37, Resulting Numbers: [98, 65, 37]\n\
Generated Node #0,1: 70:[98, 65, 37] Operation: 3+34=37\n";

/// Number of lines of [`PARENT`].
pub const PARENT_LINES: usize = 6;

/// `PARENT` followed by a spawn block with these entry lines (without `\n`).
pub fn spawned(entries: &[&str]) -> String {
    let mut s = format!("{PARENT}<Calling Sub Searches>\n");
    for e in entries {
        s.push_str(e);
        s.push('\n');
    }
    s.push_str("<End Calling Sub Searches>\n");
    s
}

/// Parses `text`, expecting an error on `line` of `kind`; checks that the
/// message names the line (for errors about a line) and returns the error.
#[track_caller]
pub fn expect_parse_error(text: &str, line: usize, kind: ParseErrorKind) -> ParseError {
    let e = match parse_trace(text) {
        Ok(t) => panic!("{text:?} parsed as {t:?}"),
        Err(e) => e,
    };
    assert_eq!((e.line, &e.kind), (line, &kind), "{text:?}: {e}");
    if line > 0 {
        let msg = e.to_string();
        assert!(msg.contains(&format!("line {line}")), "{msg:?}");
        if let ParseErrorKind::Malformed { expected, column } = kind {
            assert!(msg.contains(&format!("column {column}")), "{msg:?}");
            assert!(msg.contains(expected), "{msg:?}");
        }
    }
    e
}

pub fn malformed(expected: &'static str, column: usize) -> ParseErrorKind {
    ParseErrorKind::Malformed { expected, column }
}

/// Byte column of the first `needle` in `line`.
#[track_caller]
pub fn col(line: &str, needle: &str) -> usize {
    line.find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in {line:?}"))
}
