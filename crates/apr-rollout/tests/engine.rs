//! The scheduler with a scripted model: spawn, join, nested spawn, limits,
//! protocol violations, waiting for memory, independence of batching.

use apr_countdown::Problem;
use apr_rollout::mock::ScriptedModel;
use apr_rollout::{Engine, FinishReason, Limits, Mode, ProblemResult, RolloutConfig};
use apr_trace::Conditioning;
use apr_trace::TraceMode;

mod common;

use common::{apr_cfg, problems, run, scripted, solver_dicts, toy};

#[test]
fn replays_solver_trees_with_nested_spawns_exactly() {
    let ps = problems(12, 3);
    let dicts = solver_dicts(&ps, 2);
    let nested = dicts
        .iter()
        .filter(|(d, _)| {
            d.sub_calls
                .iter()
                .flatten()
                .any(|c| !c.sub_calls.is_empty())
        })
        .count();
    assert!(
        nested >= 2,
        "want nested trees in the test set, got {nested}"
    );
    let mut m = scripted(&ps, &dicts, 64);
    let rs = run(&mut m, &ps, apr_cfg());
    assert_eq!(rs.len(), ps.len());
    for (r, (d, solved)) in rs.iter().zip(&dicts) {
        assert_eq!(&r.trace_dict, d, "problem {}", r.problem);
        assert_eq!(r.solved, *solved);
        assert!(r.parses);
        assert_eq!(r.parse_error, None);
        assert_eq!(r.finish_reasons.get("eos"), Some(&(r.child_threads + 1)));
        // Generated tokens are exactly the scripted completions plus one
        // `</s>` per call; the log-probabilities are the model's.
        for t in r.root.threads() {
            for c in &t.calls {
                assert_eq!(c.generated_ids.len(), c.logprobs.len());
                assert_eq!(c.generated_ids.last(), Some(&apr_trace::tokenizer::EOS_ID));
            }
        }
    }
    assert!(m.max_batch > 1, "threads of different problems share steps");
}

#[test]
fn prefix_reuse_keeps_the_parents_cache_and_changes_nothing_else() {
    let ps = problems(6, 4);
    let dicts = solver_dicts(&ps, 1);
    let mut a = scripted(&ps, &dicts, 64);
    let with = run(&mut a, &ps, apr_cfg());
    let mut b = scripted(&ps, &dicts, 64);
    let without = run(
        &mut b,
        &ps,
        RolloutConfig {
            prefix_reuse: false,
            ..apr_cfg()
        },
    );
    let reused: usize = with.iter().map(|r| r.reused_tokens).sum();
    assert!(reused > 0);
    assert_eq!(without.iter().map(|r| r.reused_tokens).sum::<usize>(), 0);
    for (x, y) in with.iter().zip(&without) {
        assert_eq!(x.trace_dict, y.trace_dict);
        assert_eq!(x.prefilled_tokens + x.reused_tokens, y.prefilled_tokens);
    }
    assert_eq!(a.fed + reused, b.fed);
    // Every continuation call after a spawn reuses at least the pre-spawn text.
    let spawned = with.iter().find(|r| r.child_threads > 0).unwrap();
    assert!(spawned.root.calls[1].reused_tokens > spawned.root.calls[0].prompt_ids.len());
}

#[test]
fn threads_wait_for_memory_and_results_do_not_depend_on_the_batch() {
    let ps = problems(8, 5);
    let dicts = solver_dicts(&ps, 2);
    let mut big = scripted(&ps, &dicts, 64);
    let reference = run(&mut big, &ps, apr_cfg());
    for slots in [1, 2, 5] {
        let mut m = scripted(&ps, &dicts, slots);
        let mut engine = Engine::new(&mut m, apr_cfg()).unwrap();
        let rs = engine.run(&ps, |_| {}).unwrap();
        let evictions = engine.stats().evictions;
        for (x, y) in rs.iter().zip(&reference) {
            assert_eq!(x.trace_dict, y.trace_dict, "slots {slots}");
        }
        assert!(m.max_occupied <= slots && m.max_batch <= slots);
        if slots == 1 {
            assert!(evictions > 0, "one slot: parents must give it up");
        }
    }
}

#[test]
fn sampled_rollouts_repeat_for_a_seed_whatever_the_slots() {
    let ps = problems(4, 6);
    let dicts = solver_dicts(&ps, 1);
    let cfg = RolloutConfig {
        sampling: apr_rollout::SamplingParams::temperature(1.0),
        samples: 3,
        seed: 9,
        limits: Limits {
            max_new_tokens: 40,
            ..Limits::default()
        },
        ..RolloutConfig::default()
    };
    let mut a = scripted(&ps, &dicts, 16);
    let mut b = scripted(&ps, &dicts, 3);
    let ra = run(&mut a, &ps, cfg.clone());
    let rb = run(&mut b, &ps, cfg);
    assert_eq!(ra.len(), 12);
    assert_eq!(
        ra.iter().map(|r| (r.problem, r.sample)).collect::<Vec<_>>(),
        (0..4)
            .flat_map(|p| (0..3).map(move |s| (p, s)))
            .collect::<Vec<_>>()
    );
    for (x, y) in ra.iter().zip(&rb) {
        assert_eq!(x.root, y.root);
    }
}

/// One problem whose root call (as `cfg`'s mode prompts it) is answered
/// with `completion`.
fn one(p: &Problem, completion: &str, cfg: RolloutConfig) -> ProblemResult {
    let (cond, prompt) = cfg.root_call(p);
    let mut m = ScriptedModel::new(4, 4096).with(cond, &prompt, completion);
    let mut rs = run(&mut m, std::slice::from_ref(p), cfg);
    rs.remove(0)
}

const SPAWN_TWO: &str = "Exploring Operation: 39-5=34, Resulting Numbers: [9, 87, 34]\n\
Generated Node #0,0: 62:[9, 87, 34] Operation: 39-5=34\n\
Exploring Operation: 87-5=82, Resulting Numbers: [39, 9, 82]\n\
Generated Node #0,1: 62:[39, 9, 82] Operation: 87-5=82\n\
<Calling Sub Searches>\n\
<Start Sub Search 0 at level 1> Moving to Node #0,0\n\
<Start Sub Search 1 at level 1> Moving to Node #0,1\n\
<End Calling Sub Searches>\n";

#[test]
fn protocol_violations_end_the_thread_with_a_reason() {
    let unknown = SPAWN_TWO.replace("Moving to Node #0,1\n<End", "Moving to Node #0,7\n<End");
    let r = one(&toy(), &unknown, apr_cfg());
    assert!(
        matches!(&r.root.finish, FinishReason::Protocol(m) if m.contains("0,7")),
        "{:?}",
        r.root.finish
    );
    assert_eq!(r.child_threads, 0);
    assert!(!r.solved);

    let unterminated = SPAWN_TWO.replace("<End Calling Sub Searches>\n", "");
    let r = one(&toy(), &unterminated, apr_cfg());
    assert!(matches!(&r.root.finish, FinishReason::Protocol(m) if m.contains("unterminated")));

    let empty = "<Calling Sub Searches>\n<End Calling Sub Searches>\n";
    let r = one(&toy(), empty, apr_cfg());
    assert!(matches!(r.root.finish, FinishReason::Protocol(_)));
}

/// A call that breaks the grammar is named, with its line and the reason.
#[test]
fn the_first_call_that_does_not_parse_is_named() {
    let bad = "Exploring Operation: 39-5=34, Resulting Numbers: [9, 87, 34]\n\
Exploring Operation: 44*88= Operation: 72, Resulting Numbers: [72]\n";
    let r = one(&toy(), bad, apr_cfg());
    assert!(!r.parses);
    let e = r.parse_error.expect("a parse error");
    // Lines 1-2 are the prompt (`Moving to Node #0`, `Current State`); the
    // bad line is the fourth.
    assert!(e.starts_with("thread 0 call 0: line 4"), "{e}");
    assert!(e.contains("expected a number"), "{e}");
}

#[test]
fn out_of_order_child_indices_spawn_by_position_unless_strict() {
    let cfg = RolloutConfig {
        limits: Limits {
            max_new_tokens: 100,
            ..Limits::default()
        },
        ..apr_cfg()
    };
    let swapped = SPAWN_TWO
        .replace("Sub Search 0 at", "Sub Search 7 at")
        .replace("Sub Search 1 at", "Sub Search 5 at");
    // The reference's reading: two children, joined as Sub Search 0 and 1.
    let r = one(&toy(), &swapped, cfg.clone());
    assert_eq!(r.child_threads, 2, "{:?}", r.root.finish);
    let next = &r.root.calls[1].text;
    assert!(
        next.contains("in Sub Search 0 at level 1 at Node #0,0>"),
        "{next}"
    );
    assert!(
        next.contains("in Sub Search 1 at level 1 at Node #0,1>"),
        "{next}"
    );
    // Strict: the spawn block is a protocol error.
    let strict = RolloutConfig {
        spawn_indices: apr_trace::SpawnIndices::Strict,
        ..cfg
    };
    let r = one(&toy(), &swapped, strict);
    assert_eq!(r.child_threads, 0);
    assert!(
        matches!(&r.root.finish, FinishReason::Protocol(m) if m.contains("has index 7")),
        "{:?}",
        r.root.finish
    );
}

#[test]
fn limits_end_threads_and_problems_still_get_results() {
    // Children: no script matches their prompts, so they run away until
    // max_new_tokens; the parent then resumes and runs away too.
    let cfg = RolloutConfig {
        limits: Limits {
            max_new_tokens: 100,
            ..Limits::default()
        },
        ..apr_cfg()
    };
    let r = one(&toy(), SPAWN_TWO, cfg.clone());
    assert_eq!(r.child_threads, 2);
    assert_eq!(r.finish_reasons.get("max_new_tokens"), Some(&3));
    assert_eq!(r.root.calls.len(), 2);
    assert!(r.root.calls[1]
        .text
        .contains("<No Solution in Sub Search 1 at level 1 at Node #0,1>"));

    let few = RolloutConfig {
        limits: Limits {
            max_children: 1,
            ..cfg.limits.clone()
        },
        ..cfg.clone()
    };
    let r = one(&toy(), SPAWN_TWO, few);
    assert!(matches!(&r.root.finish, FinishReason::SpawnLimit(m) if m.contains("2 children")));

    let flat = RolloutConfig {
        limits: Limits {
            max_depth: 0,
            ..cfg.limits.clone()
        },
        ..cfg.clone()
    };
    assert!(matches!(
        one(&toy(), SPAWN_TWO, flat).root.finish,
        FinishReason::SpawnLimit(_)
    ));

    let short = RolloutConfig {
        limits: Limits {
            context: 40,
            ..cfg.limits.clone()
        },
        ..cfg.clone()
    };
    let r = one(&toy(), SPAWN_TWO, short);
    assert_eq!(r.root.finish, FinishReason::Context);
    assert_eq!(
        r.root.calls[0].prompt_ids.len() + r.root.calls[0].generated_ids.len(),
        40
    );

    let budget = RolloutConfig {
        limits: Limits {
            max_problem_tokens: 100,
            ..cfg.limits.clone()
        },
        ..cfg
    };
    let r = one(&toy(), SPAWN_TWO, budget);
    assert!(
        r.finish_reasons.contains_key("problem_tokens"),
        "{:?}",
        r.finish_reasons
    );
}

#[test]
fn single_mode_does_not_spawn() {
    let cfg = RolloutConfig {
        mode: Mode::Single,
        ..apr_cfg()
    };
    let r = one(&toy(), SPAWN_TWO, cfg);
    assert_eq!(r.root.finish, FinishReason::Eos);
    assert_eq!(r.child_threads, 0);
    assert_eq!(r.root.calls.len(), 1);
}

#[test]
fn the_budget_prefix_is_fed_to_every_root_call() {
    let p = toy();
    let cond = Some(Conditioning::SubCallBudget(2));
    let mut m = ScriptedModel::new(2, 4096).with(
        cond,
        &TraceMode::Apr.root_prompt(p.target, &p.nums),
        "Goal\n",
    );
    let cfg = RolloutConfig {
        budget: Some(2),
        ..apr_cfg()
    };
    let r = run(&mut m, std::slice::from_ref(&p), cfg).remove(0);
    let tok = apr_trace::TraceTokenizer::new();
    assert_eq!(
        r.root.calls[0].prompt_ids,
        tok.call_ids(cond, &TraceMode::Apr.root_prompt(p.target, &p.nums))
    );
    assert_eq!(
        r.root.calls[0].text,
        TraceMode::Apr.root_prompt(p.target, &p.nums) + "Goal\n"
    );
}

/// A SoS+ search of `toy()` that finds 87-39=48, 48+9=57, 57+5=62, then
/// the rewritten path.
const SOSP_SOLVED: &str = "Exploring Operation: 87-39=48, Resulting Numbers: [5, 9, 48]
Generated Node #0,0: 62:[5, 9, 48] Operation: 87-39=48
Moving to Node #0,0
Current State: 62:[5, 9, 48], Operations: ['87-39=48']
Exploring Operation: 48+9=57, Resulting Numbers: [5, 57]
Generated Node #0,0,0: 62:[5, 57] Operation: 48+9=57
Moving to Node #0,0,0
Current State: 62:[5, 57], Operations: ['87-39=48', '48+9=57']
Exploring Operation: 57+5=62, Resulting Numbers: [62]
62,62 equal: Goal Reached
Moving to Node #0
Current State: 62:[5, 39, 9, 87], Operations: []
Exploring Operation: 87-39=48, Resulting Numbers: [5, 9, 48]
Generated Node #0,0: 62:[5, 9, 48] Operation: 87-39=48
Moving to Node #0,0
Current State: 62:[5, 9, 48], Operations: ['87-39=48']
Exploring Operation: 48+9=57, Resulting Numbers: [5, 57]
Generated Node #0,0,0: 62:[5, 57] Operation: 48+9=57
Moving to Node #0,0,0
Current State: 62:[5, 57], Operations: ['87-39=48', '48+9=57']
Exploring Operation: 57+5=62, Resulting Numbers: [62]
62,62 equal: Goal Reached
";

#[test]
fn sosp_roots_start_with_the_state_line_and_are_scored_by_the_sosp_rules() {
    let p = toy();
    let prompt = "Current State: 62:[5, 39, 9, 87], Operations: []\n";
    for budget in [None, Some(512)] {
        let cfg = RolloutConfig {
            mode: Mode::Single,
            budget,
            ..apr_cfg()
        };
        let cond = budget.map(Conditioning::TokenBudget);
        // Scripted on the SoS+ prompt only: the APR prompt would get no answer.
        let mut m = ScriptedModel::new(2, 4096).with(cond, prompt, SOSP_SOLVED);
        let r = run(&mut m, std::slice::from_ref(&p), cfg).remove(0);
        let tok = apr_trace::TraceTokenizer::new();
        assert_eq!(r.root.calls[0].prompt_ids, tok.call_ids(cond, prompt));
        assert_eq!(r.root.calls[0].text, format!("{prompt}{SOSP_SOLVED}"));
        assert!(r.solved, "{:?}", r.unsolved);
        assert_eq!(
            r.answer.as_deref().unwrap(),
            ["87-39=48", "48+9=57", "57+5=62"]
        );
    }
}

/// Child 0 of `SPAWN_TWO` (from [9, 87, 34]) finds 87-34=53, 53+9=62.
const CHILD0_SOLVED: &str = "Exploring Operation: 87-34=53, Resulting Numbers: [9, 53]
Generated Node #0,0,0: 62:[9, 53] Operation: 87-34=53
Moving to Node #0,0,0
Current State: 62:[9, 53], Operations: ['39-5=34', '87-34=53']
Exploring Operation: 53+9=62, Resulting Numbers: [62]
62,62 equal: Goal Reached
Moving to Node #0,0
Current State: 62:[9, 87, 34], Operations: ['39-5=34']
Exploring Operation: 87-34=53, Resulting Numbers: [9, 53]
Generated Node #0,0,0: 62:[9, 53] Operation: 87-34=53
Moving to Node #0,0,0
Current State: 62:[9, 53], Operations: ['39-5=34', '87-34=53']
Exploring Operation: 53+9=62, Resulting Numbers: [62]
62,62 equal: Goal Reached
";

/// The parent's final path after the join.
const PARENT_PATH: &str = "62,62 equal: Goal Reached
Moving to Node #0
Current State: 62:[5, 39, 9, 87], Operations: []
Exploring Operation: 39-5=34, Resulting Numbers: [9, 87, 34]
Generated Node #0,0: 62:[9, 87, 34] Operation: 39-5=34
Moving to Node #0,0
Current State: 62:[9, 87, 34], Operations: ['39-5=34']
Exploring Operation: 87-34=53, Resulting Numbers: [9, 53]
Generated Node #0,0,0: 62:[9, 53] Operation: 87-34=53
Moving to Node #0,0,0
Current State: 62:[9, 53], Operations: ['39-5=34', '87-34=53']
Exploring Operation: 53+9=62, Resulting Numbers: [62]
62,62 equal: Goal Reached
";

/// Runs `toy()` where the root spawns two children (child 0 solves it,
/// child 1 fails) and then writes `path` after the join block.
fn spawn_join_then(spawn: &str, path: &str) -> ProblemResult {
    let p = toy();
    let cfg = apr_cfg();
    let (_, prompt) = cfg.root_call(&p);
    let c0 = "Moving to Node #0,0\nCurrent State: 62:[9, 87, 34], Operations: ['39-5=34']\n";
    let c1 = "Moving to Node #0,1\nCurrent State: 62:[39, 9, 82], Operations: ['87-5=82']\n";
    let fail = "No solution found.\n";
    let kids = [format!("{c0}{CHILD0_SOLVED}"), format!("{c1}{fail}")];
    let parent = format!("{prompt}{spawn}");
    let next = apr_trace::continuation_for(&parent, &[&kids[0], &kids[1]]).unwrap();
    let mut m = ScriptedModel::new(4, 4096)
        .with(None, &prompt, spawn)
        .with(None, c0, CHILD0_SOLVED)
        .with(None, c1, fail)
        .with(None, &next, path);
    run(&mut m, std::slice::from_ref(&p), cfg).remove(0)
}

#[test]
fn apr_answers_are_the_parents_final_path_not_a_childs_message() {
    let r = spawn_join_then(SPAWN_TWO, PARENT_PATH);
    assert_eq!(r.child_threads, 2);
    assert!(r.solved, "{:?}", r.unsolved);
    assert_eq!(
        r.answer.as_deref().unwrap(),
        ["39-5=34", "87-34=53", "53+9=62"]
    );
    // The child solved it, but the parent's own path is wrong: unsolved.
    let wrong = PARENT_PATH.replace(
        "53+9=62, Resulting Numbers: [62]",
        "53*9=62, Resulting Numbers: [62]",
    );
    let r = spawn_join_then(SPAWN_TWO, &wrong);
    assert!(!r.solved);
    assert!(
        r.unsolved.as_deref().unwrap().contains("wrong arithmetic"),
        "{:?}",
        r.unsolved
    );
    // The parent's path is right; an unparsable line elsewhere is no gate
    // on the answer (parse rate is its own metric).
    let junk = format!("{PARENT_PATH}some words\n");
    let r = spawn_join_then(SPAWN_TWO, &junk);
    assert!(r.solved && !r.parses);
}

#[test]
fn a_spawn_block_closed_without_the_final_newline_spawns() {
    let bare = SPAWN_TWO.strip_suffix('\n').unwrap();
    let r = spawn_join_then(bare, PARENT_PATH);
    assert_eq!(r.child_threads, 2, "{:?}", r.root.finish);
    assert!(r.solved, "{:?}", r.unsolved);
}

#[test]
fn a_parent_that_writes_its_own_join_block_stops_there() {
    let own = "Exploring Operation: 39-5=34, Resulting Numbers: [9, 87, 34]\n\
Generated Node #0,0: 62:[9, 87, 34] Operation: 39-5=34\n\
<Sub Searches>\n<Goal Reached in Sub Search 0 at level 1 at Node #0,0>\n";
    let r = one(&toy(), own, apr_cfg());
    assert_eq!(r.root.finish, FinishReason::WroteJoin);
    assert!(
        r.root.calls[0].text.ends_with("<Sub Searches>"),
        "{}",
        r.root.calls[0].text
    );
    assert_eq!(r.finish_reasons.get("wrote_join"), Some(&1));
    // A SoS+ model is not stopped by it.
    let cfg = RolloutConfig {
        mode: Mode::Single,
        ..apr_cfg()
    };
    let r = one(&toy(), own, cfg);
    assert_eq!(r.root.finish, FinishReason::Eos);
}
