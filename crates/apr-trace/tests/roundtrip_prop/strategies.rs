//! The strategies of the trace language's property tests
//! (`roundtrip_prop.rs`): numbers, operations, node ids, every line
//! variant, traces with conditioning, grammar fragments and mutated text,
//! spawning parents and thread trees.

use apr_trace::tokenizer::PHRASES;
use apr_trace::{Conditioning, Line, NodeId, Num, NumList, Op, OpKind, OpList, ThreadTree, Trace};
use proptest::prelude::*;
use proptest::sample::{select, Index};

/// Interesting numbers: digit-chunk boundaries of the tokenizer and the ends
/// of the `u64` range.
pub const EDGE_NUMS: [Num; 12] = [
    0,
    9,
    10,
    99,
    100,
    999,
    1000,
    999_999,
    1_000_000,
    u32::MAX as Num,
    u32::MAX as Num + 1,
    u64::MAX,
];

/// A trace number: mostly Countdown-sized, sometimes any `u64`.
pub fn num() -> impl Strategy<Value = Num> {
    prop_oneof![
        4 => 0u64..1000,
        2 => any::<u64>(),
        1 => select(EDGE_NUMS.to_vec()),
    ]
}

/// A `u32` field (node id component, child index, level, path node number).
pub fn small() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => 0u32..1000,
        1 => any::<u32>(),
        1 => select(vec![0u32, 9, 10, 999, 1000, u32::MAX]),
    ]
}

pub fn op_kind() -> impl Strategy<Value = OpKind> {
    select(vec![OpKind::Add, OpKind::Sub, OpKind::Mul, OpKind::Div])
}

/// An operation as written: the result need not be the true one (model output).
pub fn op() -> impl Strategy<Value = Op> {
    (num(), op_kind(), num(), num()).prop_map(|(lhs, kind, rhs, result)| Op {
        lhs,
        kind,
        rhs,
        result,
    })
}

pub fn node_id() -> impl Strategy<Value = NodeId> {
    prop::collection::vec(small(), 1..=6).prop_map(|v| NodeId(v.into_iter().collect()))
}

pub fn nums() -> impl Strategy<Value = NumList> {
    prop::collection::vec(num(), 0..7).prop_map(NumList::from_vec)
}

pub fn ops() -> impl Strategy<Value = OpList> {
    prop::collection::vec(op(), 0..5).prop_map(OpList::from_vec)
}

/// A line of any variant.
pub fn line() -> impl Strategy<Value = Line> {
    prop_oneof![
        (num(), nums(), ops()).prop_map(|(target, nums, ops)| Line::CurrentState {
            target,
            nums,
            ops
        }),
        (op(), nums()).prop_map(|(op, nums)| Line::Exploring { op, nums }),
        (node_id(), num(), nums(), op()).prop_map(|(id, target, nums, op)| Line::Generated {
            id,
            target,
            nums,
            op
        }),
        (small(), nums(), op()).prop_map(|(index, nums, op)| Line::PathNode { index, nums, op }),
        node_id().prop_map(|id| Line::MovingTo { id }),
        (num(), num()).prop_map(|(value, target)| Line::GoalReached { value, target }),
        (num(), num()).prop_map(|(value, target)| Line::Unequal { value, target }),
        Just(Line::NoSolutionFound),
        (small(), node_id()).prop_map(|(level, id)| Line::StartSubSearch { level, id }),
        small().prop_map(|level| Line::ExitSubSearch { level }),
        Just(Line::NoSolutionInSubSearch),
        Just(Line::CallingSubSearches),
        (small(), small(), node_id()).prop_map(|(index, level, id)| Line::SpawnChild {
            index,
            level,
            id
        }),
        Just(Line::EndCallingSubSearches),
        Just(Line::SubSearches),
        (small(), small(), node_id()).prop_map(|(index, level, id)| Line::JoinGoal {
            index,
            level,
            id
        }),
        (small(), small(), node_id()).prop_map(|(index, level, id)| Line::JoinNoSolution {
            index,
            level,
            id
        }),
        Just(Line::EndSubSearches),
    ]
}

/// Position of a line's variant in [`Line`]'s declaration; exhaustive, so a
/// new variant fails to compile here until the strategy above covers it.
pub fn variant_index(l: &Line) -> usize {
    match l {
        Line::CurrentState { .. } => 0,
        Line::Exploring { .. } => 1,
        Line::Generated { .. } => 2,
        Line::PathNode { .. } => 3,
        Line::MovingTo { .. } => 4,
        Line::GoalReached { .. } => 5,
        Line::Unequal { .. } => 6,
        Line::NoSolutionFound => 7,
        Line::StartSubSearch { .. } => 8,
        Line::ExitSubSearch { .. } => 9,
        Line::NoSolutionInSubSearch => 10,
        Line::CallingSubSearches => 11,
        Line::SpawnChild { .. } => 12,
        Line::EndCallingSubSearches => 13,
        Line::SubSearches => 14,
        Line::JoinGoal { .. } => 15,
        Line::JoinNoSolution { .. } => 16,
        Line::EndSubSearches => 17,
    }
}

pub const VARIANTS: usize = 18;

pub fn conditioning() -> impl Strategy<Value = Conditioning> {
    prop_oneof![
        small().prop_map(Conditioning::SubCallBudget),
        small().prop_map(Conditioning::TokenBudget),
    ]
}

/// A whole call. The empty trace (no prefix, no line) renders to `""`, which
/// the parser rejects as [`ParseErrorKind::EmptyInput`] by design (see
/// `empty_trace_renders_to_rejected_empty_input`), so a trace without a
/// prefix has at least one line.
pub fn trace() -> impl Strategy<Value = Trace> {
    (
        prop::option::of(conditioning()),
        prop::collection::vec(line(), 0..24),
        line(),
    )
        .prop_map(|(prefix, mut lines, first)| {
            if prefix.is_none() && lines.is_empty() {
                lines.push(first);
            }
            Trace { prefix, lines }
        })
}

/// Pieces of the grammar: every tokenizer phrase, numbers (with leading
/// zeros, out of range, negative), punctuation, whole valid lines, and a few
/// characters outside the grammar.
pub fn fragments() -> Vec<String> {
    let mut v: Vec<String> = PHRASES.iter().map(|p| p.to_string()).collect();
    v.extend(
        [
            "0",
            "7",
            "70",
            "98",
            "007",
            "1234567",
            "18446744073709551615",
            "18446744073709551616",
            "4294967296",
            "-2",
            "\n",
            "\n",
            "\n",
            "[",
            "]",
            "'",
            ",",
            ", ",
            " ",
            ":",
            "#",
            "+",
            "-",
            "*",
            "/",
            "=",
            "<",
            ">",
            ".",
            "0,1",
            "0,0,0",
            "\r",
            "\t",
            "é",
            "🦀",
            "\u{0}",
            "Moving to Node #0\n",
            "Moving to Node #0,0\n",
            "Current State: 70:[98, 3, 34, 65], Operations: []\n",
            "Current State: 70:[3, 34, 33], Operations: ['98-65=33']\n",
            "Exploring Operation: 98-65=33, Resulting Numbers: [3, 34, 33]\n",
            "Exploring Operation: 34+36=70, Resulting Numbers: [70]\n",
            "Generated Node #0,0: 70:[3, 34, 33] Operation: 98-65=33\n",
            "Generated Node #0,1: 70:[98, 65, 37] Operation: 3+34=37\n",
            "Generated Node #2: [34, 65, 101] from Operation: 98+3=101\n",
            "70,70 equal: Goal Reached\n",
            "2,70 unequal: No Solution\n",
            "No solution found.\n",
            "<Calling Sub Searches>\n",
            "<Start Sub Search 0 at level 1> Moving to Node #0,0\n",
            "<Start Sub Search 1 at level 1> Moving to Node #0,1\n",
            "<End Calling Sub Searches>\n",
            "<Sub Searches>\n",
            "<Goal Reached in Sub Search 0 at level 1 at Node #0,0>\n",
            "<No Solution in Sub Search 1 at level 1 at Node #0,1>\n",
            "<End Sub Searches>\n",
            "Sub Call Budget: 3 ",
            "Token Budget: 512 ",
        ]
        .map(String::from),
    );
    v
}

/// Whole lines and blocks that fit together: a root search generating
/// nodes `0,0` and `0,1`, spawn and join blocks, goal paths.
pub fn whole_lines() -> Vec<String> {
    let mut v: Vec<String> = fragments()
        .into_iter()
        .filter(|f| f.len() > 1 && f.ends_with('\n'))
        .collect();
    v.extend(
        [
            "<Calling Sub Searches>\n<Start Sub Search 0 at level 1> Moving to Node #0,0\n\
<End Calling Sub Searches>\n",
            "<Calling Sub Searches>\n<Start Sub Search 0 at level 1> Moving to Node #0,0\n\
<Start Sub Search 1 at level 1> Moving to Node #0,1\n<End Calling Sub Searches>\n",
            "Moving to Node #0,0\nCurrent State: 70:[34, 36], Operations: ['98-65=33', '3+33=36']\n\
Exploring Operation: 34+36=70, Resulting Numbers: [70]\n70,70 equal: Goal Reached\n",
        ]
        .map(String::from),
    );
    v
}

/// Grammar fragments glued together at random: mostly whole lines, with
/// loose pieces now and then.
pub fn fragment_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            3 => select(whole_lines()),
            1 => select(fragments()),
        ],
        0..30,
    )
    .prop_map(|v| v.concat())
}

/// Snaps a byte position down to a character boundary of `s`.
pub fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A text damaged once: cut short, a fragment inserted, or a range deleted.
pub fn mutated(text: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    (
        text,
        0..3u8,
        any::<Index>(),
        any::<Index>(),
        select(fragments()),
    )
        .prop_map(|(s, how, a, b, frag)| {
            let i = floor_boundary(&s, a.index(s.len() + 1));
            let j = floor_boundary(&s, b.index(s.len() + 1));
            let (lo, hi) = (i.min(j), i.max(j));
            match how {
                0 => s[..i].to_string(),
                1 => format!("{}{frag}{}", &s[..i], &s[i..]),
                _ => format!("{}{}", &s[..lo], &s[hi..]),
            }
        })
}

/// Any text at all: arbitrary Unicode, grammar soup, or a damaged trace or
/// spawning parent.
pub fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC*".prop_map(String::from),
        any::<String>(),
        fragment_soup(),
        mutated(trace().prop_map(|t| t.render())),
        mutated(spawning_parent().prop_map(|(t, _)| t.render())),
        mutated(fragment_soup()),
    ]
}

/// A parent call that ends in a well-formed spawn block naming nodes it
/// generated, with the expected child prompts' states.
pub fn spawning_parent() -> impl Strategy<Value = (Trace, Vec<(NodeId, Num, NumList, OpList)>)> {
    (
        num(),
        nums(),
        ops(),
        prop::collection::vec((num(), nums(), op()), 1..6),
        prop::collection::vec(line(), 0..6),
        prop::collection::vec(any::<Index>(), 1..5),
    )
        .prop_map(|(target, root_nums, root_ops, gens, noise, picks)| {
            let mut lines = vec![
                Line::MovingTo { id: NodeId::root() },
                Line::CurrentState {
                    target,
                    nums: root_nums,
                    ops: root_ops.clone(),
                },
            ];
            // Noise lines that cannot change the generated states: no
            // `Current State`, `Generated Node` or spawn-block lines.
            lines.extend(noise.into_iter().filter(|l| {
                !matches!(
                    l,
                    Line::CurrentState { .. }
                        | Line::Generated { .. }
                        | Line::CallingSubSearches
                        | Line::SpawnChild { .. }
                        | Line::EndCallingSubSearches
                )
            }));
            let mut states = Vec::new();
            for (k, (t, n, o)) in gens.into_iter().enumerate() {
                let id = NodeId::root().child(k as u32);
                lines.push(Line::Exploring {
                    op: o,
                    nums: n.clone(),
                });
                lines.push(Line::Generated {
                    id: id.clone(),
                    target: t,
                    nums: n.clone(),
                    op: o,
                });
                let mut path = root_ops.clone();
                path.push(o);
                states.push((id, t, n, path));
            }
            lines.push(Line::CallingSubSearches);
            let mut expected = Vec::new();
            for (i, p) in picks.iter().enumerate() {
                let s = states[p.index(states.len())].clone();
                lines.push(Line::SpawnChild {
                    index: i as u32,
                    level: 1,
                    id: s.0.clone(),
                });
                expected.push(s);
            }
            lines.push(Line::EndCallingSubSearches);
            (Trace::from_lines(lines), expected)
        })
}

/// A thread's calls as a model writes them: each call after the first
/// repeats a prefix of whole lines of a common history (at least the first
/// line, as the protocol's continuations do) and then goes its own way; all
/// calls carry the same conditioning prefix, if any.
pub fn thread_calls() -> impl Strategy<Value = Vec<Trace>> {
    (
        prop::option::of(conditioning()),
        prop::collection::vec(line(), 1..10),
        prop::collection::vec((any::<Index>(), prop::collection::vec(line(), 0..5)), 1..4),
    )
        .prop_map(|(prefix, history, calls)| {
            calls
                .into_iter()
                .map(|(cut, own)| {
                    let keep = 1 + cut.index(history.len());
                    let mut lines = history[..keep].to_vec();
                    lines.extend(own);
                    Trace { prefix, lines }
                })
                .collect()
        })
}

/// A thread tree of at most `depth` levels, with 0 to 2 spawn rounds of 1 to
/// 3 children per thread.
pub fn thread_tree(depth: u32) -> BoxedStrategy<ThreadTree> {
    if depth <= 1 {
        return thread_calls()
            .prop_map(|calls| ThreadTree {
                calls,
                children: Vec::new(),
            })
            .boxed();
    }
    (
        thread_calls(),
        prop::collection::vec(prop::collection::vec(thread_tree(depth - 1), 1..4), 0..3),
    )
        .prop_map(|(calls, children)| ThreadTree { calls, children })
        .boxed()
}
