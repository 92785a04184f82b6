//! The spawn/join protocol as functions on text, the form a rollout engine
//! sees: child prompts from a parent's spawn block, a child's join message,
//! and the parent's continuation prompt.

use crate::error::{Error, Result};
use crate::line::Line;
use crate::parse::parse_trace;
use crate::render::{push_id, push_line};
use crate::tree::TraceDict;
use crate::types::{NodeId, Num, NumList, OpList};
use std::collections::HashMap;

/// Opening line of a spawn block, with its newline.
pub const SPAWN_OPEN: &str = "<Calling Sub Searches>\n";
/// Closing line of a spawn block, with its newline.
pub const SPAWN_CLOSE: &str = "<End Calling Sub Searches>\n";

/// One child named by a spawn block, with the state of its start node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildPrompt {
    /// Index in the spawn block.
    pub index: u32,
    /// Level written in the spawn block.
    pub level: u32,
    /// Start node.
    pub id: NodeId,
    /// Target number.
    pub target: Num,
    /// Numbers at the start node.
    pub nums: NumList,
    /// Operations from the root to the start node.
    pub ops: OpList,
}

impl ChildPrompt {
    /// The prompt's two lines: `Moving to Node #{id}` and its `Current State`.
    pub fn lines(&self) -> [Line; 2] {
        [
            Line::MovingTo {
                id: self.id.clone(),
            },
            Line::CurrentState {
                target: self.target,
                nums: self.nums.clone(),
                ops: self.ops.clone(),
            },
        ]
    }

    /// The prompt text, both lines `\n`-terminated.
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(96);
        for l in self.lines() {
            push_line(&mut s, &l);
        }
        s
    }
}

/// A parsed spawn block at the end of a parent's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpawnBlock {
    /// Length in bytes of the parent's text before the block.
    pub pre_spawn_len: usize,
    /// The children, in block order.
    pub children: Vec<ChildPrompt>,
}

impl SpawnBlock {
    /// The parent's text before the block.
    pub fn pre_spawn<'a>(&self, parent_text: &'a str) -> &'a str {
        &parent_text[..self.pre_spawn_len]
    }
}

/// The closing line of a spawn block without its newline: a model may end
/// its call right after it (the official rollout accepts a block whose last
/// line contains it).
pub const SPAWN_CLOSE_LINE: &str = "<End Calling Sub Searches>";
/// The first line of a join block, which only the engine writes. The
/// official rollout uses it as a stop string.
pub const JOIN_OPEN: &str = "<Sub Searches>";

/// Whether a text (possibly a partial generation) ends in a complete spawn
/// block, with or without the final newline.
pub fn ends_with_spawn(text: &str) -> bool {
    text.ends_with(SPAWN_CLOSE) || text.ends_with(SPAWN_CLOSE_LINE)
}

/// How the child indices written in a spawn block
/// (`<Start Sub Search {i} at level ...>`) are read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpawnIndices {
    /// They must be `0, 1, 2, ...` in order; otherwise the block is an
    /// error ([`Error::BadChildIndex`]). The grammar the solvers write.
    #[default]
    Strict,
    /// They are ignored: children are numbered by their position in the
    /// block, and the join block uses those numbers. This is what the
    /// reference's rollout code does (it reads each entry's node id and
    /// enumerates the entries), so a model that numbers its entries out of
    /// order still spawns there.
    Positional,
}

/// Reads the spawn block that ends `parent_text` and the start state of
/// every child it names, found from the parent's `Generated Node` lines and
/// the operations of the state each was generated from. Child indices must
/// be in order ([`SpawnIndices::Strict`]).
pub fn parse_spawn(parent_text: &str) -> Result<SpawnBlock> {
    parse_spawn_with(parent_text, SpawnIndices::Strict)
}

/// [`parse_spawn`], reading the written child indices as `indices` says.
pub fn parse_spawn_with(parent_text: &str, indices: SpawnIndices) -> Result<SpawnBlock> {
    let closed;
    let text = if parent_text.ends_with(SPAWN_CLOSE_LINE) {
        closed = format!("{parent_text}\n");
        closed.as_str()
    } else {
        parent_text
    };
    let trace = parse_trace(text)?;
    let lines = &trace.lines;
    let Some(open) = lines
        .iter()
        .rposition(|l| matches!(l, Line::CallingSubSearches))
    else {
        return Err(Error::NoSpawnBlock);
    };
    let mut children = Vec::new();
    let mut closed = false;
    for (k, l) in lines[open + 1..].iter().enumerate() {
        let line_no = open + 2 + k;
        match l {
            Line::SpawnChild { .. } if closed => {
                return Err(Error::UnexpectedLineInSpawnBlock { line: line_no })
            }
            Line::SpawnChild { index, level, id } => {
                let position = children.len() as u32;
                if *index != position && indices == SpawnIndices::Strict {
                    return Err(Error::BadChildIndex {
                        position: children.len(),
                        found: *index,
                    });
                }
                children.push((position, *level, id.clone()));
            }
            Line::EndCallingSubSearches if !closed => closed = true,
            _ if closed => return Err(Error::NoSpawnBlock),
            _ => return Err(Error::UnexpectedLineInSpawnBlock { line: line_no }),
        }
    }
    if !closed {
        return Err(Error::UnterminatedSpawnBlock { line: open + 1 });
    }
    if children.is_empty() {
        return Err(Error::EmptySpawnBlock);
    }
    let states = generated_states(&lines[..open]);
    let children = children
        .into_iter()
        .map(|(index, level, id)| match states.get(&id) {
            Some((target, nums, ops)) => Ok(ChildPrompt {
                index,
                level,
                target: *target,
                nums: nums.clone(),
                ops: ops.clone(),
                id,
            }),
            None => Err(Error::UnknownNode(id.to_string())),
        })
        .collect::<Result<Vec<_>>>()?;
    // The block is the text's tail and its entry lines cannot contain the
    // opener, so the last opener is the block's.
    let pre_spawn_len = parent_text.rfind(SPAWN_OPEN).ok_or(Error::NoSpawnBlock)?;
    Ok(SpawnBlock {
        pre_spawn_len,
        children,
    })
}

type NodeState = (Num, NumList, OpList);

/// The state of every node generated in `lines`: its target and numbers from
/// its `Generated Node` line, and its operations as those of the latest
/// `Current State` before it plus its own operation.
fn generated_states(lines: &[Line]) -> HashMap<NodeId, NodeState> {
    let mut states = HashMap::new();
    let mut ops_here: Option<&OpList> = None;
    for l in lines {
        match l {
            Line::CurrentState { ops, .. } => ops_here = Some(ops),
            Line::Generated {
                id,
                target,
                nums,
                op,
            } => {
                let mut ops = ops_here.cloned().unwrap_or_default();
                ops.push(*op);
                states.insert(id.clone(), (*target, nums.clone(), ops));
            }
            _ => {}
        }
    }
    states
}

/// The message a finished child returns to its parent: the text after its
/// second-to-last `equal: Goal Reached` line (its goal path), when the text
/// ends with a goal line; `None` when the child found no solution.
pub fn join_message(child_text: &str) -> Option<&str> {
    let mut goal_ends: [Option<usize>; 2] = [None, None];
    let mut start = 0;
    let mut last_is_goal = false;
    for (i, b) in child_text.bytes().enumerate() {
        if b == b'\n' {
            let line = &child_text[start..i];
            last_is_goal = is_goal_line(line);
            if last_is_goal {
                goal_ends = [goal_ends[1], Some(i + 1)];
            }
            start = i + 1;
        }
    }
    if start != child_text.len() || !last_is_goal {
        return None;
    }
    goal_ends[0].map(|e| &child_text[e..])
}

fn is_goal_line(line: &str) -> bool {
    line.ends_with(" equal: Goal Reached")
        && matches!(crate::parse::parse_line(line), Ok(Line::GoalReached { .. }))
}

/// One child's result, as the parent's continuation reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinResult<'a> {
    /// Index in the spawn block.
    pub index: u32,
    /// Level in the spawn block.
    pub level: u32,
    /// Start node.
    pub id: &'a NodeId,
    /// The child's join message, `None` if it found no solution.
    pub message: Option<&'a str>,
}

/// The parent's continuation prompt: its pre-spawn text, then the
/// `<Sub Searches>` block with each child's outcome and message.
pub fn continuation(pre_spawn: &str, results: &[JoinResult<'_>]) -> String {
    let extra: usize = results
        .iter()
        .map(|r| 64 + r.message.map_or(0, str::len))
        .sum();
    let mut s = String::with_capacity(pre_spawn.len() + extra + 40);
    s.push_str(pre_spawn);
    push_join_block(&mut s, results);
    s
}

/// Appends the `<Sub Searches>` ... `<End Sub Searches>` block.
pub fn push_join_block(s: &mut String, results: &[JoinResult<'_>]) {
    s.push_str("<Sub Searches>\n");
    for r in results {
        let goal = r.message.is_some();
        s.push_str(if goal {
            "<Goal Reached in Sub Search "
        } else {
            "<No Solution in Sub Search "
        });
        let mut b = itoa::Buffer::new();
        s.push_str(b.format(r.index));
        s.push_str(" at level ");
        s.push_str(b.format(r.level));
        s.push_str(" at Node #");
        push_id(s, r.id);
        s.push_str(">\n");
        if let Some(m) = r.message {
            s.push_str(m);
        }
    }
    s.push_str("<End Sub Searches>\n");
}

/// The continuation of `parent_text` (ending in a spawn block) given the
/// texts of its finished children, in block order.
pub fn continuation_for(parent_text: &str, child_texts: &[&str]) -> Result<String> {
    continuation_for_with(parent_text, child_texts, SpawnIndices::Strict)
}

/// [`continuation_for`], reading the spawn block's indices as `indices`
/// says (the join block numbers the children by position either way).
pub fn continuation_for_with(
    parent_text: &str,
    child_texts: &[&str],
    indices: SpawnIndices,
) -> Result<String> {
    let block = parse_spawn_with(parent_text, indices)?;
    if block.children.len() != child_texts.len() {
        return Err(Error::JoinCountMismatch {
            expected: block.children.len(),
            found: child_texts.len(),
        });
    }
    let results: Vec<JoinResult<'_>> = block
        .children
        .iter()
        .zip(child_texts)
        .map(|(c, t)| JoinResult {
            index: c.index,
            level: c.level,
            id: &c.id,
            message: join_message(t),
        })
        .collect();
    Ok(continuation(block.pre_spawn(parent_text), &results))
}

/// Checks that a `trace_dict` follows the protocol, recursively: each spawn
/// round's children are those named by the parent's spawn block and start
/// with the prompts the protocol gives them, and the parent's next call
/// starts with the continuation built from the children's last calls. A
/// thread may end in a spawn round with no next call (a run cut short).
pub fn check_protocol(d: &TraceDict) -> Result<()> {
    let rounds = d.sub_calls.len();
    if rounds + 1 != d.main_calls.len() && rounds != d.main_calls.len() {
        return Err(Error::TreeProtocol {
            round: rounds,
            message: format!(
                "{} main calls but {rounds} spawn rounds",
                d.main_calls.len()
            ),
        });
    }
    for (round, kids) in d.sub_calls.iter().enumerate() {
        let bad = |message: String| Error::TreeProtocol { round, message };
        let parent = &d.main_calls[round];
        let block = parse_spawn(parent).map_err(|e| bad(e.to_string()))?;
        if block.children.len() != kids.len() {
            return Err(bad(format!(
                "spawn block names {} children, {} ran",
                block.children.len(),
                kids.len()
            )));
        }
        let mut texts = Vec::with_capacity(kids.len());
        for (c, k) in block.children.iter().zip(kids) {
            let first = k.main_calls.first().map_or("", String::as_str);
            if !first.starts_with(&c.render()) {
                return Err(bad(format!(
                    "child {} does not start with its prompt",
                    c.index
                )));
            }
            check_protocol(k)?;
            texts.push(k.main_calls.last().map_or("", String::as_str));
        }
        if let Some(next) = d.main_calls.get(round + 1) {
            let cont = continuation_for(parent, &texts).map_err(|e| bad(e.to_string()))?;
            if !next.starts_with(&cont) {
                return Err(bad("next call does not continue the join".into()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "Moving to Node #0\n\
Current State: 70:[98, 3, 34, 65], Operations: []\n\
Exploring Operation: 98-65=33, Resulting Numbers: [3, 34, 33]\n\
Generated Node #0,0: 70:[3, 34, 33] Operation: 98-65=33\n\
Exploring Operation: 3+34=37, Resulting Numbers: [98, 65, 37]\n\
Generated Node #0,1: 70:[98, 65, 37] Operation: 3+34=37\n";

    const CHILD0: &str = "Moving to Node #0,0\n\
Current State: 70:[3, 34, 33], Operations: ['98-65=33']\n\
Exploring Operation: 3+33=36, Resulting Numbers: [34, 36]\n\
Generated Node #0,0,0: 70:[34, 36] Operation: 3+33=36\n\
Moving to Node #0,0,0\n\
Current State: 70:[34, 36], Operations: ['98-65=33', '3+33=36']\n\
Exploring Operation: 34+36=70, Resulting Numbers: [70]\n\
70,70 equal: Goal Reached\n\
Moving to Node #0,0\n\
Current State: 70:[3, 34, 33], Operations: ['98-65=33']\n\
Exploring Operation: 3+33=36, Resulting Numbers: [34, 36]\n\
Generated Node #0,0,0: 70:[34, 36] Operation: 3+33=36\n\
Moving to Node #0,0,0\n\
Current State: 70:[34, 36], Operations: ['98-65=33', '3+33=36']\n\
Exploring Operation: 34+36=70, Resulting Numbers: [70]\n\
70,70 equal: Goal Reached\n";

    fn spawned() -> String {
        format!(
            "{PARENT}<Calling Sub Searches>\n<Start Sub Search 0 at level 1> Moving to Node #0,0\n\
<Start Sub Search 1 at level 1> Moving to Node #0,1\n<End Calling Sub Searches>\n"
        )
    }

    #[test]
    fn child_prompts_from_spawn_block() {
        let text = spawned();
        let b = parse_spawn(&text).unwrap();
        assert_eq!(b.pre_spawn(&text), PARENT);
        assert_eq!(b.children.len(), 2);
        assert_eq!(
            b.children[0].render(),
            "Moving to Node #0,0\nCurrent State: 70:[3, 34, 33], Operations: ['98-65=33']\n"
        );
        assert_eq!(
            b.children[1].render(),
            "Moving to Node #0,1\nCurrent State: 70:[98, 65, 37], Operations: ['3+34=37']\n"
        );
    }

    #[test]
    fn spawn_block_closed_without_the_final_newline() {
        let full = spawned();
        let bare = full.strip_suffix('\n').unwrap();
        assert!(ends_with_spawn(bare) && ends_with_spawn(&full));
        assert!(!ends_with_spawn(PARENT));
        assert_eq!(parse_spawn(bare).unwrap(), parse_spawn(&full).unwrap());
        assert_eq!(
            continuation_for(bare, &[CHILD0, CHILD0]).unwrap(),
            continuation_for(&full, &[CHILD0, CHILD0]).unwrap()
        );
    }

    #[test]
    fn join_and_continue() {
        let msg = join_message(CHILD0).unwrap();
        assert!(msg.starts_with("Moving to Node #0,0\nCurrent State: 70:[3, 34, 33]"));
        assert_eq!(msg.matches('\n').count(), 8);
        let failed = "Moving to Node #0,1\nCurrent State: 70:[98, 65, 37], Operations: ['3+34=37']\nNo solution found.\n";
        assert_eq!(join_message(failed), None);
        assert_eq!(join_message("70,70 equal: Goal Reached\n"), None);
        let c = continuation_for(&spawned(), &[CHILD0, failed]).unwrap();
        let expected = format!(
            "{PARENT}<Sub Searches>\n<Goal Reached in Sub Search 0 at level 1 at Node #0,0>\n{msg}\
<No Solution in Sub Search 1 at level 1 at Node #0,1>\n<End Sub Searches>\n"
        );
        assert_eq!(c, expected);
        assert!(matches!(
            continuation_for(&spawned(), &[CHILD0]),
            Err(Error::JoinCountMismatch { .. })
        ));
    }

    #[test]
    fn protocol_violations() {
        assert!(matches!(parse_spawn(PARENT), Err(Error::NoSpawnBlock)));
        let empty = format!("{PARENT}<Calling Sub Searches>\n<End Calling Sub Searches>\n");
        assert!(matches!(parse_spawn(&empty), Err(Error::EmptySpawnBlock)));
        let open = format!(
            "{PARENT}<Calling Sub Searches>\n<Start Sub Search 0 at level 1> Moving to Node #0,0\n"
        );
        assert!(matches!(
            parse_spawn(&open),
            Err(Error::UnterminatedSpawnBlock { line: 7 })
        ));
        let unknown = format!("{PARENT}<Calling Sub Searches>\n<Start Sub Search 0 at level 1> Moving to Node #0,7\n<End Calling Sub Searches>\n");
        assert!(matches!(parse_spawn(&unknown), Err(Error::UnknownNode(id)) if id == "0,7"));
        let idx = format!("{PARENT}<Calling Sub Searches>\n<Start Sub Search 1 at level 1> Moving to Node #0,0\n<End Calling Sub Searches>\n");
        assert!(matches!(
            parse_spawn(&idx),
            Err(Error::BadChildIndex {
                position: 0,
                found: 1
            })
        ));
        // Read by position, the same block spawns child 0 at node 0,0, and
        // its join block says "Sub Search 0".
        let block = parse_spawn_with(&idx, SpawnIndices::Positional).unwrap();
        assert_eq!(block.children.len(), 1);
        assert_eq!(
            (block.children[0].index, block.children[0].id.to_string()),
            (0, "0,0".to_string())
        );
        let next = continuation_for_with(&idx, &["x"], SpawnIndices::Positional).unwrap();
        assert!(next.ends_with("<Sub Searches>\n<No Solution in Sub Search 0 at level 1 at Node #0,0>\n<End Sub Searches>\n"), "{next}");
        assert!(continuation_for(&idx, &["x"]).is_err());
        let junk = format!(
            "{PARENT}<Calling Sub Searches>\nNo solution found.\n<End Calling Sub Searches>\n"
        );
        assert!(matches!(
            parse_spawn(&junk),
            Err(Error::UnexpectedLineInSpawnBlock { line: 8 })
        ));
        assert!(matches!(
            parse_spawn(&format!("{PARENT}<Calling Sub Searches>\n<Start Sub")),
            Err(Error::Parse(_))
        ));
    }
}
