//! What the thread-tree protocol decides about a call, apart from any
//! decoding: after which token it ends ([`CallEnds`]), whether an APR call
//! that ended spawns (and its children's prompts) or ends its thread, and
//! a parent's next prompt once its children are done. These decisions are
//! the same whichever backend generated the call: a backend that returns
//! whole calls can replay their ids through [`CallEnds::after_token`].

use crate::config::{Mode, RolloutConfig};
use crate::result::FinishReason;
use apr_trace::protocol::{
    continuation_for_with, ends_with_spawn, parse_spawn_with, JOIN_OPEN, SPAWN_CLOSE_LINE,
    SPAWN_OPEN,
};
use apr_trace::tokenizer::{EOS_ID, SPECIAL_TOKENS};
use apr_trace::TraceTokenizer;

/// Why a sampled id has no place in a call's text, if it has none: an id
/// outside the tokenizer's vocabulary (a model's embedding may be padded
/// past it), or a special token other than `</s>`.
fn bad_token(tok: &TraceTokenizer, id: u32) -> Option<String> {
    let n = tok.vocab_size();
    if id as usize >= n {
        return Some(format!("id {id} outside the tokenizer's {n} ids"));
    }
    match SPECIAL_TOKENS.get(id as usize) {
        Some(name) if id != EOS_ID => Some(format!("special token {name}")),
        _ => None,
    }
}

/// The rules that end a call after a generated token: the same for every
/// backend (a backend that returns whole calls replays their ids).
#[derive(Debug, Clone)]
pub struct CallEnds {
    ignore_eos: bool,
    max_new_tokens: usize,
    max_problem_tokens: usize,
    /// Prompt and generated tokens a call may hold.
    capacity: usize,
    /// The tokens of [`JOIN_OPEN`] in APR mode (only the engine writes a
    /// join block: a call that generates its opening stops); empty
    /// otherwise.
    join_open: Vec<u32>,
}

impl CallEnds {
    /// The rules of `cfg` for calls of at most `capacity` tokens.
    pub fn new(cfg: &RolloutConfig, tok: &TraceTokenizer, capacity: usize) -> Self {
        CallEnds {
            ignore_eos: cfg.ignore_eos,
            max_new_tokens: cfg.limits.max_new_tokens,
            max_problem_tokens: cfg.limits.max_problem_tokens,
            capacity,
            join_open: match cfg.mode {
                Mode::Apr => tok.encode(JOIN_OPEN),
                Mode::Single => Vec::new(),
            },
        }
    }

    /// Whether the call `ids` (its prompt of `prompt_len` tokens, then the
    /// tokens generated so far, the last just sampled) ends here, and why,
    /// with `problem_tokens` fed for its problem so far. The first rule
    /// that holds wins, in this order: a bad token, the end token, the
    /// call's token limit, the context, the problem's token budget, the
    /// join block's opening.
    pub fn after_token(
        &self,
        tok: &TraceTokenizer,
        ids: &[u32],
        prompt_len: usize,
        problem_tokens: usize,
    ) -> Option<FinishReason> {
        let last = *ids.last()?;
        let generated = &ids[prompt_len.min(ids.len())..];
        if let Some(why) = bad_token(tok, last) {
            Some(FinishReason::BadToken(why))
        } else if last == EOS_ID && !self.ignore_eos {
            Some(FinishReason::Eos)
        } else if generated.len() >= self.max_new_tokens {
            Some(FinishReason::MaxNewTokens)
        } else if ids.len() >= self.capacity {
            Some(FinishReason::Context)
        } else if self.max_problem_tokens > 0 && problem_tokens >= self.max_problem_tokens {
            Some(FinishReason::ProblemTokens)
        } else if !self.join_open.is_empty() && generated.ends_with(&self.join_open) {
            Some(FinishReason::WroteJoin)
        } else {
            None
        }
    }
}

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

    /// Each rule by hand, on calls with a 2-token prompt: the order of the
    /// rules decides when several hold.
    #[test]
    fn calls_end_on_the_first_rule_that_holds() {
        let tok = TraceTokenizer::new();
        let mut cfg = apr();
        cfg.limits.max_new_tokens = 4;
        cfg.limits.max_problem_tokens = 100;
        let ends = CallEnds::new(&cfg, &tok, 8);
        let a = tok.encode("1")[0];
        let at = |ids: &[u32], fed| ends.after_token(&tok, ids, 2, fed);
        assert_eq!(at(&[9, 9, a], 0), None);
        assert_eq!(at(&[9, 9, a, EOS_ID], 0), Some(FinishReason::Eos));
        assert!(matches!(at(&[9, 9, 1], 0), Some(FinishReason::BadToken(_))));
        let outside = tok.vocab_size() as u32;
        assert!(matches!(
            at(&[9, 9, outside], 0),
            Some(FinishReason::BadToken(_))
        ));
        assert_eq!(at(&[9, 9, a, a, a, a], 0), Some(FinishReason::MaxNewTokens));
        let long = CallEnds::new(&cfg, &tok, 4);
        assert_eq!(
            long.after_token(&tok, &[9, 9, a, a], 2, 0),
            Some(FinishReason::Context)
        );
        assert_eq!(at(&[9, 9, a], 100), Some(FinishReason::ProblemTokens));
        let mut join = vec![9, 9];
        join.extend(tok.encode(JOIN_OPEN));
        let mut cfg2 = cfg.clone();
        cfg2.limits.max_new_tokens = 64;
        let wide2 = CallEnds::new(&cfg2, &tok, 64);
        assert_eq!(
            wide2.after_token(&tok, &join, 2, 0),
            Some(FinishReason::WroteJoin)
        );
        // The end token is an ordinary token when ignored; single mode has
        // no join rule.
        cfg2.ignore_eos = true;
        cfg2.mode = Mode::Single;
        let plain = CallEnds::new(&cfg2, &tok, 64);
        assert_eq!(plain.after_token(&tok, &[9, 9, a, EOS_ID], 2, 0), None);
        assert_eq!(plain.after_token(&tok, &join, 2, 0), None);
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
