//! What the thread-tree protocol decides when a call ends, apart from any
//! decoding: whether an APR call spawns (and its children's prompts) or
//! ends its thread, and a parent's next prompt once its children are done.
//! These decisions are the same whichever backend generated the call.

use crate::config::{Mode, RolloutConfig};
use crate::result::FinishReason;
use apr_trace::protocol::{
    continuation_for_with, ends_with_spawn, parse_spawn_with, SPAWN_CLOSE_LINE, SPAWN_OPEN,
};

/// What follows a call that ended with `reason`.
#[derive(Debug, PartialEq)]
pub(crate) enum AfterCall {
    /// The thread ends.
    Finish(FinishReason),
    /// The thread waits for children with these prompts, in block order.
    Spawn(Vec<String>),
}

/// Decides what follows a call of a thread at `depth` that has already run
/// `rounds` spawn rounds, whose whole text (prompt and generation) is
/// `text` and which ended with `reason`. Only an APR call ending on the
/// end token may spawn: with a complete spawn block at its end, within the
/// limits. An unterminated block is a protocol failure.
pub(crate) fn after_call(
    cfg: &RolloutConfig,
    text: &str,
    reason: FinishReason,
    rounds: usize,
    depth: usize,
) -> AfterCall {
    if reason != FinishReason::Eos || cfg.mode != Mode::Apr {
        return AfterCall::Finish(reason);
    }
    if !ends_with_spawn(text) {
        if let Some(open) = text.rfind(SPAWN_OPEN) {
            if !text[open..].contains(SPAWN_CLOSE_LINE) {
                let why = "unterminated spawn block".to_string();
                return AfterCall::Finish(FinishReason::Protocol(why));
            }
        }
        return AfterCall::Finish(FinishReason::Eos);
    }
    let block = match parse_spawn_with(text, cfg.spawn_indices) {
        Ok(b) => b,
        Err(e) => return AfterCall::Finish(FinishReason::Protocol(e.to_string())),
    };
    let l = &cfg.limits;
    let over = if block.children.len() > l.max_children {
        Some(format!(
            "{} children > {}",
            block.children.len(),
            l.max_children
        ))
    } else if rounds >= l.max_rounds {
        Some(format!("round {} > {}", rounds + 1, l.max_rounds))
    } else if depth >= l.max_depth {
        Some(format!("depth {} > {}", depth + 1, l.max_depth))
    } else {
        None
    };
    match over {
        Some(why) => AfterCall::Finish(FinishReason::SpawnLimit(why)),
        None => AfterCall::Spawn(block.children.iter().map(|c| c.render()).collect()),
    }
}

/// The prompt of a parent's next call once all its children of the last
/// round have ended: its last call's text with the join block built from
/// the children's last calls; a protocol failure ends the parent instead.
pub(crate) fn resume_prompt(
    cfg: &RolloutConfig,
    parent_text: &str,
    child_texts: &[&str],
) -> Result<String, FinishReason> {
    continuation_for_with(parent_text, child_texts, cfg.spawn_indices)
        .map_err(|e| FinishReason::Protocol(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use apr_trace::protocol::continuation_for_with;

    const PARENT: &str = "Moving to Node #0\n\
Current State: 70:[98, 3, 34, 65], Operations: []\n\
Exploring Operation: 98-65=33, Resulting Numbers: [3, 34, 33]\n\
Generated Node #0,0: 70:[3, 34, 33] Operation: 98-65=33\n\
Exploring Operation: 3+34=37, Resulting Numbers: [98, 65, 37]\n\
Generated Node #0,1: 70:[98, 65, 37] Operation: 3+34=37\n";

    const CHILD0: &str = "Moving to Node #0,0\n\
Current State: 70:[3, 34, 33], Operations: ['98-65=33']\n\
Exploring Operation: 34+36=70, Resulting Numbers: [70]\n\
70,70 equal: Goal Reached\n";

    fn spawned() -> String {
        format!(
            "{PARENT}<Calling Sub Searches>\n<Start Sub Search 0 at level 1> Moving to Node #0,0\n\
<Start Sub Search 1 at level 1> Moving to Node #0,1\n<End Calling Sub Searches>\n"
        )
    }

    fn apr() -> RolloutConfig {
        RolloutConfig {
            mode: Mode::Apr,
            ..RolloutConfig::default()
        }
    }

    #[test]
    fn a_complete_spawn_block_gives_its_childrens_prompts() {
        let got = after_call(&apr(), &spawned(), FinishReason::Eos, 0, 0);
        let want = vec![
            "Moving to Node #0,0\nCurrent State: 70:[3, 34, 33], Operations: ['98-65=33']\n"
                .to_string(),
            "Moving to Node #0,1\nCurrent State: 70:[98, 65, 37], Operations: ['3+34=37']\n"
                .to_string(),
        ];
        assert_eq!(got, AfterCall::Spawn(want));
    }

    #[test]
    fn calls_that_cannot_spawn_end_their_thread() {
        let single = RolloutConfig {
            mode: Mode::Single,
            ..RolloutConfig::default()
        };
        let eos = FinishReason::Eos;
        assert_eq!(
            after_call(&single, &spawned(), eos.clone(), 0, 0),
            AfterCall::Finish(eos.clone())
        );
        let cut = FinishReason::MaxNewTokens;
        assert_eq!(
            after_call(&apr(), &spawned(), cut.clone(), 0, 0),
            AfterCall::Finish(cut)
        );
        assert_eq!(
            after_call(&apr(), PARENT, eos.clone(), 0, 0),
            AfterCall::Finish(eos)
        );
        let open = format!(
            "{PARENT}<Calling Sub Searches>\n<Start Sub Search 0 at level 1> Moving to Node #0,0\n"
        );
        assert_eq!(
            after_call(&apr(), &open, FinishReason::Eos, 0, 0),
            AfterCall::Finish(FinishReason::Protocol("unterminated spawn block".into()))
        );
    }

    /// Two children, a limit of one; the third round with a limit of two;
    /// depth 2 with a limit of 2.
    #[test]
    fn spawns_past_a_limit_end_the_thread() {
        let mut cfg = apr();
        cfg.limits.max_children = 1;
        let limit = |why: &str| AfterCall::Finish(FinishReason::SpawnLimit(why.into()));
        assert_eq!(
            after_call(&cfg, &spawned(), FinishReason::Eos, 0, 0),
            limit("2 children > 1")
        );
        let mut cfg = apr();
        cfg.limits.max_rounds = 2;
        assert_eq!(
            after_call(&cfg, &spawned(), FinishReason::Eos, 2, 0),
            limit("round 3 > 2")
        );
        cfg.limits.max_depth = 2;
        assert_eq!(
            after_call(&cfg, &spawned(), FinishReason::Eos, 1, 2),
            limit("depth 3 > 2")
        );
    }

    #[test]
    fn a_parent_resumes_with_the_join_block_or_fails_the_protocol() {
        let cfg = apr();
        let text = spawned();
        let want = continuation_for_with(&text, &[CHILD0, CHILD0], cfg.spawn_indices).unwrap();
        assert_eq!(resume_prompt(&cfg, &text, &[CHILD0, CHILD0]), Ok(want));
        assert!(matches!(
            resume_prompt(&cfg, &text, &[CHILD0]),
            Err(FinishReason::Protocol(_))
        ));
    }
}
