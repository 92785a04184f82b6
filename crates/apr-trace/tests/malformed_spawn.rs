//! Malformed spawn blocks, one named test per case (the rest of the
//! malformed input is in `malformed.rs`): each asserts the exact error of
//! the parser or of the spawn protocol.

mod common;

use apr_trace::{continuation_for, parse_spawn, Error};
use common::*;

// ------------------------------------------------------------- spawn blocks

#[test]
fn well_formed_spawn_block_parses() {
    let text = spawned(&[
        "<Start Sub Search 0 at level 1> Moving to Node #0,0",
        "<Start Sub Search 1 at level 1> Moving to Node #0,1",
    ]);
    let b = parse_spawn(&text).unwrap();
    assert_eq!(b.children.len(), 2);
    assert_eq!(b.pre_spawn(&text), PARENT);
}

#[test]
fn spawn_block_naming_an_unknown_node() {
    let text = spawned(&[
        "<Start Sub Search 0 at level 1> Moving to Node #0,0",
        "<Start Sub Search 1 at level 1> Moving to Node #0,7",
    ]);
    let e = parse_spawn(&text).unwrap_err();
    assert!(matches!(&e, Error::UnknownNode(id) if id == "0,7"), "{e:?}");
    assert!(e.to_string().contains("#0,7"));
    assert!(matches!(
        continuation_for(&text, &["No solution found.\n"; 2]),
        Err(Error::UnknownNode(_))
    ));
}

#[test]
fn spawn_block_naming_a_node_only_moved_to() {
    // Moving to a node does not generate it: the child's state is unknown.
    let text = "Moving to Node #0,3\n<Calling Sub Searches>\n\
<Start Sub Search 0 at level 1> Moving to Node #0,3\n<End Calling Sub Searches>\n";
    assert!(matches!(parse_spawn(text), Err(Error::UnknownNode(id)) if id == "0,3"));
}

#[test]
fn spawn_block_with_no_children() {
    let text = spawned(&[]);
    let e = parse_spawn(&text).unwrap_err();
    assert!(matches!(e, Error::EmptySpawnBlock), "{e:?}");
}

#[test]
fn unterminated_spawn_block() {
    let text = format!(
        "{PARENT}<Calling Sub Searches>\n<Start Sub Search 0 at level 1> Moving to Node #0,0\n"
    );
    let e = parse_spawn(&text).unwrap_err();
    let opener = PARENT_LINES + 1;
    assert!(
        matches!(e, Error::UnterminatedSpawnBlock { line } if line == opener),
        "{e:?}"
    );
    assert!(e.to_string().contains(&format!("line {opener}")), "{e}");
}

#[test]
fn spawn_block_opener_alone() {
    let text = format!("{PARENT}<Calling Sub Searches>\n");
    assert!(matches!(
        parse_spawn(&text),
        Err(Error::UnterminatedSpawnBlock { line }) if line == PARENT_LINES + 1
    ));
}

#[test]
fn spawn_indices_out_of_order() {
    let text = spawned(&[
        "<Start Sub Search 0 at level 1> Moving to Node #0,0",
        "<Start Sub Search 2 at level 1> Moving to Node #0,1",
    ]);
    let e = parse_spawn(&text).unwrap_err();
    assert!(
        matches!(
            e,
            Error::BadChildIndex {
                position: 1,
                found: 2
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("entry 1 has index 2"));
}

#[test]
fn spawn_indices_not_starting_at_zero() {
    let text = spawned(&["<Start Sub Search 1 at level 1> Moving to Node #0,0"]);
    assert!(matches!(
        parse_spawn(&text),
        Err(Error::BadChildIndex {
            position: 0,
            found: 1
        })
    ));
}

#[test]
fn spawn_indices_repeated() {
    let text = spawned(&[
        "<Start Sub Search 0 at level 1> Moving to Node #0,0",
        "<Start Sub Search 0 at level 1> Moving to Node #0,1",
    ]);
    assert!(matches!(
        parse_spawn(&text),
        Err(Error::BadChildIndex {
            position: 1,
            found: 0
        })
    ));
}

#[test]
fn foreign_line_inside_a_spawn_block() {
    let text = spawned(&[
        "<Start Sub Search 0 at level 1> Moving to Node #0,0",
        "No solution found.",
    ]);
    let e = parse_spawn(&text).unwrap_err();
    let junk = PARENT_LINES + 3;
    assert!(
        matches!(e, Error::UnexpectedLineInSpawnBlock { line } if line == junk),
        "{e:?}"
    );
    assert!(e.to_string().contains(&format!("line {junk}")), "{e}");
}

#[test]
fn lines_after_the_spawn_block() {
    let text = format!(
        "{}No solution found.\n",
        spawned(&["<Start Sub Search 0 at level 1> Moving to Node #0,0"])
    );
    assert!(matches!(parse_spawn(&text), Err(Error::NoSpawnBlock)));
}

#[test]
fn no_spawn_block_at_all() {
    assert!(matches!(parse_spawn(PARENT), Err(Error::NoSpawnBlock)));
}

#[test]
fn spawn_block_with_a_malformed_entry() {
    let entry = "<Start Sub Search 0 at level 1> Moving to Node #";
    let text = spawned(&[entry]);
    let e = parse_spawn(&text).unwrap_err();
    let Error::Parse(pe) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(pe.line, PARENT_LINES + 2);
    assert_eq!(pe.kind, malformed("a number", entry.len()));
    assert!(e
        .to_string()
        .contains(&format!("line {}", PARENT_LINES + 2)));
}

#[test]
fn join_with_the_wrong_number_of_children() {
    let text = spawned(&[
        "<Start Sub Search 0 at level 1> Moving to Node #0,0",
        "<Start Sub Search 1 at level 1> Moving to Node #0,1",
    ]);
    let e = continuation_for(&text, &["No solution found.\n"]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::JoinCountMismatch {
                expected: 2,
                found: 1
            }
        ),
        "{e:?}"
    );
}
