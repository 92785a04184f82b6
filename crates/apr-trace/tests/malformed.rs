//! Malformed input, one named test per case: each asserts the exact error
//! ([`ParseErrorKind`] with its expected item and column, or the
//! [`apr_trace::Error`] variant of the spawn protocol, or the thread path and
//! call index of a [`TreeParseError`]) and that the error's message names the
//! line where the input has one.

use apr_trace::{
    continuation_for, extract_solution_text, parse_line, parse_spawn, parse_trace,
    parse_trace_bytes, Conditioning, Error, Line, ParseError, ParseErrorKind, ThreadTree,
    TraceDict, TreeParseError,
};

mod common;

use common::*;

// ------------------------------------------------------ truncated input

#[test]
fn truncated_last_line_without_final_newline() {
    let text = "Moving to Node #0\nCurrent State: 70:[98, 3], Operations: []";
    let e = expect_parse_error(text, 2, ParseErrorKind::MissingFinalNewline);
    assert_eq!(e.text, "Current State: 70:[98, 3], Operations: []");
    assert!(e.to_string().contains("truncated"));
}

#[test]
fn truncated_generation_cut_mid_list_without_newline() {
    // A generation cut off by the length limit: the last line is incomplete
    // and unterminated; it is reported as truncated, not as malformed.
    let text = format!("{PARENT}Current State: 70:[3, 34");
    let e = expect_parse_error(&text, PARENT_LINES + 1, ParseErrorKind::MissingFinalNewline);
    assert_eq!(e.text, "Current State: 70:[3, 34");
}

#[test]
fn line_cut_in_the_middle_of_a_number_list() {
    let line = "Current State: 70:[98, 3";
    expect_parse_error(
        &format!("Moving to Node #0\n{line}\n"),
        2,
        malformed("', ' or ']'", line.len()),
    );
}

#[test]
fn line_cut_after_a_list_separator() {
    let line = "Exploring Operation: 98-65=33, Resulting Numbers: [3, ";
    expect_parse_error(&format!("{line}\n"), 1, malformed("a number", line.len()));
}

#[test]
fn line_cut_in_the_middle_of_an_operation_list() {
    let line = "Current State: 70:[3, 34, 33], Operations: ['98-65=33', ";
    expect_parse_error(&format!("{line}\n"), 1, malformed("'", line.len()));
    let line = "Current State: 70:[3, 34, 33], Operations: ['98-65=";
    expect_parse_error(&format!("{line}\n"), 1, malformed("a number", line.len()));
}

// ------------------------------------------------------------ wrong numbers

#[test]
fn non_digit_inside_a_number_in_a_list() {
    let line = "Current State: 70:[98, 3x4], Operations: []";
    expect_parse_error(
        &format!("{line}\n"),
        1,
        malformed("', ' or ']'", col(line, "x")),
    );
}

#[test]
fn non_digit_inside_a_target() {
    // Letter O for zero.
    let line = "Current State: 7O:[98, 3], Operations: []";
    expect_parse_error(&format!("{line}\n"), 1, malformed(":", col(line, "O")));
}

#[test]
fn non_digit_inside_an_operand() {
    let line = "Exploring Operation: 9a-65=33, Resulting Numbers: [3, 34, 33]";
    expect_parse_error(
        &format!("{line}\n"),
        1,
        malformed("an operator (+ - * /)", col(line, "a-")),
    );
}

#[test]
fn non_digit_inside_a_node_id() {
    let line = "Moving to Node #0,1x";
    expect_parse_error(
        &format!("{PARENT}{line}\n"),
        PARENT_LINES + 1,
        malformed("end of line", col(line, "x")),
    );
    let line = "Moving to Node #O";
    expect_parse_error(
        &format!("{line}\n"),
        1,
        malformed("a number", col(line, "O")),
    );
}

#[test]
fn number_with_leading_zeros_in_a_list() {
    let line = "Current State: 70:[98, 03], Operations: []";
    expect_parse_error(
        &format!("{line}\n"),
        1,
        malformed("a number without leading zeros", col(line, "03")),
    );
}

#[test]
fn number_with_leading_zeros_in_a_goal_line() {
    expect_parse_error(
        "070,70 equal: Goal Reached\n",
        1,
        malformed("a number without leading zeros", 0),
    );
}

#[test]
fn node_id_component_with_leading_zeros() {
    let line = "Moving to Node #0,01";
    expect_parse_error(
        &format!("{line}\n"),
        1,
        malformed("a number without leading zeros", col(line, "01")),
    );
    // A lone zero is the root, not a leading zero.
    assert_eq!(
        parse_line("Moving to Node #0,0").unwrap().to_string(),
        "Moving to Node #0,0"
    );
}

#[test]
fn number_above_u64_max() {
    // u64::MAX itself is a valid number.
    let max = format!("{},70 unequal: No Solution\n", u64::MAX);
    assert_eq!(
        parse_trace(&max).unwrap().lines,
        [Line::Unequal {
            value: u64::MAX,
            target: 70
        }]
    );
    // One more overflows; the column is the number's first digit.
    expect_parse_error(
        "18446744073709551616,70 unequal: No Solution\n",
        1,
        malformed("a number below 2^64", 0),
    );
    let line = "Exploring Operation: 1*99999999999999999999=1, Resulting Numbers: [1]";
    expect_parse_error(
        &format!("{line}\n"),
        1,
        malformed("a number below 2^64", col(line, "9999")),
    );
}

#[test]
fn node_id_component_above_u32_max() {
    let line = "Moving to Node #0,4294967296";
    expect_parse_error(
        &format!("{line}\n"),
        1,
        malformed("a number below 2^32", col(line, "4294967296")),
    );
    let line = "<Start Sub Search 4294967296 at level 1> Moving to Node #0,0";
    expect_parse_error(
        &format!("{line}\n"),
        1,
        malformed("a number below 2^32", col(line, "4294967296")),
    );
    assert!(parse_line("Moving to Node #0,4294967295").is_ok());
}

#[test]
fn negative_result_in_an_operation() {
    // `3-5=-2`: Countdown numbers are non-negative.
    let line = "Exploring Operation: 3-5=-2, Resulting Numbers: [-2]";
    expect_parse_error(
        &format!("{line}\n"),
        1,
        malformed("a number", col(line, "-2")),
    );
}

#[test]
fn negative_number_in_a_list() {
    let line = "Current State: 70:[98, -2], Operations: []";
    expect_parse_error(
        &format!("{line}\n"),
        1,
        malformed("a number", col(line, "-2")),
    );
}

#[test]
fn negative_number_starting_a_line() {
    expect_parse_error(
        "Moving to Node #0\n-2,70 unequal: No Solution\n",
        2,
        ParseErrorKind::UnknownLine,
    );
}

// ---------------------------------------------------------- unknown lines

#[test]
fn unknown_line_text() {
    let e = expect_parse_error(
        "Moving to Node #0\nLet me think about this.\n",
        2,
        ParseErrorKind::UnknownLine,
    );
    assert_eq!(e.text, "Let me think about this.");
    assert!(e.to_string().contains("Let me think about this."));
}

#[test]
fn unknown_line_with_wrong_case() {
    expect_parse_error(
        "current state: 70:[98, 3], Operations: []\n",
        1,
        ParseErrorKind::UnknownLine,
    );
}

#[test]
fn blank_line_is_unknown() {
    expect_parse_error(
        "Moving to Node #0\n\nNo solution found.\n",
        2,
        ParseErrorKind::UnknownLine,
    );
}

#[test]
fn unknown_line_text_is_cut_to_120_characters() {
    let long = "é".repeat(300);
    let e = expect_parse_error(&format!("{long}\n"), 1, ParseErrorKind::UnknownLine);
    assert_eq!(e.text.chars().count(), 120);
}

#[test]
fn crlf_line_ending() {
    let line = "Moving to Node #0\r";
    expect_parse_error(
        &format!("{line}\n"),
        1,
        malformed("end of line", col(line, "\r")),
    );
}

#[test]
fn trailing_text_after_a_complete_line() {
    expect_parse_error(
        "No solution found. Really.\n",
        1,
        malformed("end of line", "No solution found.".len()),
    );
}

#[test]
fn goal_line_with_an_unknown_verdict() {
    let line = "12,70 equal";
    expect_parse_error(
        &format!("Moving to Node #0\n{line}\n"),
        2,
        malformed(
            "' equal: Goal Reached' or ' unequal: No Solution'",
            col(line, " "),
        ),
    );
}

#[test]
fn operator_outside_countdown() {
    let line = "Exploring Operation: 3%4=1, Resulting Numbers: [1]";
    expect_parse_error(
        &format!("{line}\n"),
        1,
        malformed("an operator (+ - * /)", col(line, "%")),
    );
}

#[test]
fn path_node_with_a_multi_component_id() {
    let line = "Generated Node #0,2: [34, 65] from Operation: 98+3=101";
    expect_parse_error(
        &format!("{line}\n"),
        1,
        malformed(
            "a single node number before a target-less state",
            col(line, "["),
        ),
    );
}

// ---------------------------------------------------------- bytes and empty

#[test]
fn non_utf8_bytes() {
    let e = parse_trace_bytes(b"Moving to Node #0\n\xff\xfeNo solution found.\n").unwrap_err();
    assert_eq!(e.line, 0);
    assert_eq!(e.kind, ParseErrorKind::NotUtf8 { valid_up_to: 18 });
    assert!(e.to_string().contains("offset 18"), "{e}");
}

#[test]
fn utf8_sequence_cut_at_the_end() {
    // "é" is C3 A9; a generation cut after C3.
    let e = parse_trace_bytes(b"Moving to Node #0\n\xc3").unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::NotUtf8 { valid_up_to: 18 });
}

#[test]
fn lone_utf8_continuation_byte() {
    let e = parse_trace_bytes(b"\x80Moving to Node #0\n").unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::NotUtf8 { valid_up_to: 0 });
}

#[test]
fn valid_utf8_bytes_parse_like_text() {
    let text = format!("{PARENT}No solution found.\n");
    assert_eq!(parse_trace_bytes(text.as_bytes()), parse_trace(&text));
    // Valid UTF-8 outside the grammar is a parse error, not a UTF-8 one.
    let e = parse_trace_bytes("é\n".as_bytes()).unwrap_err();
    assert_eq!((e.line, e.kind), (1, ParseErrorKind::UnknownLine));
}

#[test]
fn empty_input() {
    let e = expect_parse_error("", 0, ParseErrorKind::EmptyInput);
    assert_eq!(e.to_string(), "empty trace");
    assert_eq!(
        parse_trace_bytes(b"").unwrap_err().kind,
        ParseErrorKind::EmptyInput
    );
    assert!(matches!(
        parse_spawn(""),
        Err(Error::Parse(ParseError {
            kind: ParseErrorKind::EmptyInput,
            ..
        }))
    ));
    assert!(matches!(
        extract_solution_text(""),
        Err(Error::Parse(ParseError {
            kind: ParseErrorKind::EmptyInput,
            ..
        }))
    ));
    assert!(matches!(
        continuation_for("", &[]),
        Err(Error::Parse(ParseError {
            kind: ParseErrorKind::EmptyInput,
            ..
        }))
    ));
}

#[test]
fn lone_newline() {
    expect_parse_error("\n", 1, ParseErrorKind::UnknownLine);
}

// -------------------------------------------------------------- trace_dict

/// A trace_dict whose root's second call is fine, and whose second child of
/// the first round has a broken second call (line 2: bad number list).
const BROKEN_CHILD_DICT: &str = r#"{
  "main_calls": [
    "Moving to Node #0\nGenerated Node #0,0: 70:[3, 34, 33] Operation: 98-65=33\nGenerated Node #0,1: 70:[98, 65, 37] Operation: 3+34=37\n<Calling Sub Searches>\n<Start Sub Search 0 at level 1> Moving to Node #0,0\n<Start Sub Search 1 at level 1> Moving to Node #0,1\n<End Calling Sub Searches>\n",
    "Moving to Node #0\nNo solution found.\n"
  ],
  "sub_calls": [[
    {"main_calls": ["Moving to Node #0,0\nNo solution found.\n"], "sub_calls": []},
    {"main_calls": [
       "Moving to Node #0,1\nNo solution found.\n",
       "Moving to Node #0,1\nCurrent State: 70:[98; 65], Operations: []\n"
     ], "sub_calls": []}
  ]]
}"#;

#[test]
fn trace_dict_with_a_broken_call_in_a_child() {
    let dict: TraceDict = serde_json::from_str(BROKEN_CHILD_DICT).unwrap();
    let e = ThreadTree::from_dict(&dict).unwrap_err();
    let line = "Current State: 70:[98; 65], Operations: []";
    assert_eq!(
        e,
        TreeParseError {
            thread: vec![(0, 1)],
            call: 1,
            error: ParseError {
                line: 2,
                kind: malformed("', ' or ']'", col(line, ";")),
                text: line.to_string(),
            },
        }
    );
    let msg = e.to_string();
    assert!(
        msg.starts_with("thread root/sub_calls[0][1], main_calls[1]: line 2, column 21"),
        "{msg}"
    );
    // Wrapped in the crate's error, the message is unchanged.
    assert_eq!(Error::from(e).to_string(), msg);
}

#[test]
fn trace_dict_with_a_broken_root_call() {
    let dict = TraceDict {
        main_calls: vec![
            "Moving to Node #0\n".to_string(),
            "Moving to Node #0\nNo solution found".to_string(),
        ],
        sub_calls: vec![],
    };
    let e = ThreadTree::from_dict(&dict).unwrap_err();
    assert_eq!(e.thread, []);
    assert_eq!(e.call, 1);
    assert_eq!(e.error.line, 2);
    assert_eq!(e.error.kind, ParseErrorKind::MissingFinalNewline);
    assert!(
        e.to_string()
            .starts_with("thread root, main_calls[1]: line 2: truncated"),
        "{e}"
    );
}

#[test]
fn trace_dict_with_a_broken_grandchild() {
    let ok = |t: &str| TraceDict {
        main_calls: vec![t.to_string()],
        sub_calls: vec![],
    };
    let grandchild = TraceDict {
        main_calls: vec![String::new()],
        sub_calls: vec![],
    };
    let child = TraceDict {
        main_calls: vec!["Moving to Node #0,1\n".to_string()],
        sub_calls: vec![vec![ok("Moving to Node #0,1,0\n")], vec![grandchild]],
    };
    let dict = TraceDict {
        main_calls: vec!["Moving to Node #0\n".to_string()],
        sub_calls: vec![vec![ok("Moving to Node #0,0\n"), child]],
    };
    let e = ThreadTree::from_dict(&dict).unwrap_err();
    assert_eq!(e.thread, [(0, 1), (1, 0)]);
    assert_eq!(e.call, 0);
    assert_eq!(e.error.kind, ParseErrorKind::EmptyInput);
    assert_eq!(
        e.to_string(),
        "thread root/sub_calls[0][1]/sub_calls[1][0], main_calls[0]: empty trace"
    );
}

// ------------------------------------------------------ conditioning prefix

#[test]
fn conditioning_prefix_with_a_non_number() {
    let text = "Sub Call Budget: x Moving to Node #0\n";
    let e = expect_parse_error(text, 1, malformed("a number", col(text, "x")));
    assert_eq!(e.text, text.trim_end());
}

#[test]
fn conditioning_prefix_with_leading_zeros() {
    let text = "Token Budget: 0512 Moving to Node #0\n";
    expect_parse_error(
        text,
        1,
        malformed("a number without leading zeros", col(text, "0512")),
    );
}

#[test]
fn conditioning_prefix_with_a_negative_number() {
    let text = "Sub Call Budget: -3 Moving to Node #0\n";
    expect_parse_error(text, 1, malformed("a number", col(text, "-3")));
}

#[test]
fn conditioning_prefix_above_u32_max() {
    let text = "Sub Call Budget: 4294967296 Moving to Node #0\n";
    expect_parse_error(
        text,
        1,
        malformed("a number below 2^32", col(text, "4294967296")),
    );
    let text = "Token Budget: 4294967295 Moving to Node #0\n";
    assert_eq!(
        parse_trace(text).unwrap().prefix,
        Some(Conditioning::TokenBudget(u32::MAX))
    );
}

#[test]
fn conditioning_prefix_without_its_trailing_space() {
    let text = "Token Budget: 512Moving to Node #0\n";
    expect_parse_error(text, 1, malformed(" ", col(text, "M")));
    let text = "Token Budget: 512\n";
    expect_parse_error(text, 1, malformed(" ", col(text, "\n")));
}

#[test]
fn conditioning_prefix_followed_by_a_bad_line() {
    // The prefix is fine; the error is in the first line's body.
    let e = parse_trace("Sub Call Budget: 3 Moving to Node #x\n").unwrap_err();
    assert_eq!(e.line, 1);
    assert!(matches!(
        e.kind,
        ParseErrorKind::Malformed {
            expected: "a number",
            ..
        }
    ));
    assert!(e.to_string().contains("line 1"));
}
