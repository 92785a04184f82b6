use super::*;
use crate::types::OpKind;
use smallvec::smallvec;

#[test]
fn renders_each_line_kind() {
    let op = Op::new(98, OpKind::Sub, 65).unwrap();
    let id: NodeId = NodeId::root().child(3);
    let cases: Vec<(Line, &str)> = vec![
        (
            Line::CurrentState {
                target: 70,
                nums: smallvec![3, 34, 33],
                ops: smallvec![op],
            },
            "Current State: 70:[3, 34, 33], Operations: ['98-65=33']",
        ),
        (
            Line::CurrentState {
                target: 70,
                nums: smallvec![98, 3],
                ops: smallvec![],
            },
            "Current State: 70:[98, 3], Operations: []",
        ),
        (
            Line::Exploring {
                op,
                nums: smallvec![3, 34, 33],
            },
            "Exploring Operation: 98-65=33, Resulting Numbers: [3, 34, 33]",
        ),
        (
            Line::Generated {
                id: id.clone(),
                target: 70,
                nums: smallvec![3, 34, 33],
                op,
            },
            "Generated Node #0,3: 70:[3, 34, 33] Operation: 98-65=33",
        ),
        (
            Line::PathNode {
                index: 2,
                nums: smallvec![3, 34, 33],
                op,
            },
            "Generated Node #2: [3, 34, 33] from Operation: 98-65=33",
        ),
        (Line::MovingTo { id: id.clone() }, "Moving to Node #0,3"),
        (
            Line::GoalReached {
                value: 70,
                target: 70,
            },
            "70,70 equal: Goal Reached",
        ),
        (
            Line::Unequal {
                value: 2,
                target: 70,
            },
            "2,70 unequal: No Solution",
        ),
        (Line::NoSolutionFound, "No solution found."),
        (
            Line::StartSubSearch {
                level: 1,
                id: id.clone(),
            },
            "Start Sub Search at level 1: Moving to Node #0,3",
        ),
        (
            Line::ExitSubSearch { level: 2 },
            "Exit Sub Search at level 2",
        ),
        (
            Line::NoSolutionInSubSearch,
            "No solution found in sub search",
        ),
        (Line::CallingSubSearches, "<Calling Sub Searches>"),
        (
            Line::SpawnChild {
                index: 0,
                level: 1,
                id: id.clone(),
            },
            "<Start Sub Search 0 at level 1> Moving to Node #0,3",
        ),
        (Line::EndCallingSubSearches, "<End Calling Sub Searches>"),
        (Line::SubSearches, "<Sub Searches>"),
        (
            Line::JoinGoal {
                index: 4,
                level: 1,
                id: id.clone(),
            },
            "<Goal Reached in Sub Search 4 at level 1 at Node #0,3>",
        ),
        (
            Line::JoinNoSolution {
                index: 1,
                level: 1,
                id,
            },
            "<No Solution in Sub Search 1 at level 1 at Node #0,3>",
        ),
        (Line::EndSubSearches, "<End Sub Searches>"),
    ];
    let tok = crate::TraceTokenizer::new();
    for (line, text) in cases {
        assert_eq!(line.to_string(), text);
        // Counted as rendered: the lexer's count of the text and its `\n`.
        let n = crate::TraceTokenizer::count_line(&line);
        assert_eq!(n, tok.count(&format!("{text}\n")), "{text}");
    }
}

/// Every line kind, with the largest numbers the types allow.
fn extreme_lines() -> Vec<Line> {
    let big = Op {
        lhs: u64::MAX,
        kind: OpKind::Mul,
        rhs: u64::MAX,
        result: u64::MAX,
    };
    let nums: crate::types::NumList = smallvec![u64::MAX; 6];
    let ops: crate::types::OpList = smallvec![big; 5];
    let id = NodeId(smallvec![u32::MAX; 9]);
    let (index, level) = (u32::MAX, u32::MAX);
    vec![
        Line::CurrentState {
            target: u64::MAX,
            nums: nums.clone(),
            ops,
        },
        Line::Exploring {
            op: big,
            nums: nums.clone(),
        },
        Line::Generated {
            id: id.clone(),
            target: u64::MAX,
            nums: nums.clone(),
            op: big,
        },
        Line::PathNode {
            index,
            nums,
            op: big,
        },
        Line::MovingTo { id: id.clone() },
        Line::GoalReached {
            value: u64::MAX,
            target: u64::MAX,
        },
        Line::Unequal {
            value: u64::MAX,
            target: u64::MAX,
        },
        Line::NoSolutionFound,
        Line::StartSubSearch {
            level,
            id: id.clone(),
        },
        Line::ExitSubSearch { level },
        Line::NoSolutionInSubSearch,
        Line::CallingSubSearches,
        Line::SpawnChild {
            index,
            level,
            id: id.clone(),
        },
        Line::EndCallingSubSearches,
        Line::SubSearches,
        Line::JoinGoal {
            index,
            level,
            id: id.clone(),
        },
        Line::JoinNoSolution { index, level, id },
        Line::EndSubSearches,
    ]
}

#[test]
fn line_writer_matches_sinks_and_bound_holds() {
    let tok = crate::TraceTokenizer::new();
    let lines = extreme_lines();
    let mut text = String::new();
    let mut json = Vec::new();
    // Start from a non-empty buffer: the writer appends.
    let mut plain = b"head".to_vec();
    let mut escaped = b"head".to_vec();
    {
        let mut p = LineWriter::<false>::new(&mut plain);
        let mut e = LineWriter::<true>::new(&mut escaped);
        for l in &lines {
            let before = text.len();
            push_line(&mut text, l);
            assert!(text.len() - before <= line_bound(&l.as_ref()), "{l:?}");
            push_line(&mut JsonEscaped(&mut json), l);
            // The writers count the tokens the lexer finds in the text.
            let tokens = tok.count(&text[before..]);
            assert_eq!(p.line(l.as_ref()), tokens, "{l:?}");
            assert_eq!(e.line(l.as_ref()), tokens, "{l:?}");
        }
    }
    // A line longer than the scratch buffer takes the slow path.
    let long = Line::CurrentState {
        target: 1,
        nums: (0..300).collect(),
        ops: smallvec![],
    };
    assert!(line_bound(&long.as_ref()) > SCRATCH);
    {
        let mut p = LineWriter::<false>::new(&mut plain);
        let mut e = LineWriter::<true>::new(&mut escaped);
        for l in [&lines[0], &long, &lines[1]] {
            let before = text.len();
            push_line(&mut text, l);
            push_line(&mut JsonEscaped(&mut json), l);
            let tokens = tok.count(&text[before..]);
            assert_eq!(p.line(l.as_ref()), tokens, "{l:?}");
            assert_eq!(e.line(l.as_ref()), tokens, "{l:?}");
        }
    }
    assert_eq!(&plain[..4], b"head");
    assert_eq!(std::str::from_utf8(&plain[4..]).unwrap(), text);
    assert_eq!(&escaped[4..], &json[..]);
    assert_eq!(json.len(), text.len() + lines.len() + 3);
}

#[test]
fn every_small_number_and_the_boundaries_render_as_decimal() {
    let values: Vec<u64> = (0..1100).chain([9999, 10_000, u64::MAX]).collect();
    let mut expected = String::new();
    let mut got = Vec::new();
    let mut plain = String::new();
    {
        let mut w = LineWriter::<false>::new(&mut got);
        for v in &values {
            let line = Line::GoalReached {
                value: *v,
                target: *v,
            };
            expected.push_str(&format!("{v},{v} equal: Goal Reached\n"));
            push_line(&mut plain, &line);
            w.line(line.as_ref());
        }
    }
    assert_eq!(std::str::from_utf8(&got).unwrap(), expected);
    assert_eq!(plain, expected);
}

#[test]
fn renders_prefix() {
    let t = Trace {
        prefix: Some(Conditioning::SubCallBudget(6)),
        lines: vec![Line::MovingTo { id: NodeId::root() }],
    };
    assert_eq!(t.render(), "Sub Call Budget: 6 Moving to Node #0\n");
    let t = Trace {
        prefix: Some(Conditioning::token_budget_for(513, 512, 4096)),
        lines: vec![Line::NoSolutionFound],
    };
    assert_eq!(t.render(), "Token Budget: 1024 No solution found.\n");
    assert_eq!(
        Conditioning::token_budget_for(9000, 512, 4096),
        Conditioning::TokenBudget(4096)
    );
}
