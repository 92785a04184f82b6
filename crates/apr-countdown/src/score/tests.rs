use super::*;

fn p() -> Problem {
    Problem {
        nums: vec![98, 3, 34, 65],
        target: 70,
    }
}

/// The reference's APR root: pre-spawn text, a join block with two
/// successful children, then the parent's goal line and its path.
const PRE: &str = "Moving to Node #0
Current State: 70:[98, 3, 34, 65], Operations: []
Exploring Operation: 98-65=33, Resulting Numbers: [3, 34, 33]
Generated Node #0,0: 70:[3, 34, 33] Operation: 98-65=33
Exploring Operation: 65-34=31, Resulting Numbers: [98, 3, 31]
Generated Node #0,1: 70:[98, 3, 31] Operation: 65-34=31
";
const JOIN: &str = "<Sub Searches>
<Goal Reached in Sub Search 0 at level 1 at Node #0,0>
Moving to Node #0,0
Current State: 70:[3, 34, 33], Operations: ['98-65=33']
Exploring Operation: 3+33=36, Resulting Numbers: [34, 36]
Generated Node #0,0,0: 70:[34, 36] Operation: 3+33=36
Moving to Node #0,0,0
Current State: 70:[34, 36], Operations: ['98-65=33', '3+33=36']
Exploring Operation: 34+36=70, Resulting Numbers: [70]
70,70 equal: Goal Reached
<No Solution in Sub Search 1 at level 1 at Node #0,1>
<End Sub Searches>
";
const PATH: &str = "70,70 equal: Goal Reached
Moving to Node #0
Current State: 70:[98, 3, 34, 65], Operations: []
Exploring Operation: 98-65=33, Resulting Numbers: [3, 34, 33]
Generated Node #0,0: 70:[3, 34, 33] Operation: 98-65=33
Moving to Node #0,0
Current State: 70:[3, 34, 33], Operations: ['98-65=33']
Exploring Operation: 3+33=36, Resulting Numbers: [34, 36]
Generated Node #0,0,0: 70:[34, 36] Operation: 3+33=36
Moving to Node #0,0,0
Current State: 70:[34, 36], Operations: ['98-65=33', '3+33=36']
Exploring Operation: 34+36=70, Resulting Numbers: [70]
70,70 equal: Goal Reached
";

fn apr(text: &str) -> Score {
    score(&p(), TraceMode::Apr, text)
}

#[test]
fn apr_reads_the_parents_final_path() {
    let good = format!("{PRE}{JOIN}{PATH}");
    let s = apr(&good);
    assert_eq!(s.verdict, Ok(()));
    assert_eq!(
        s.answer_strings().unwrap(),
        ["98-65=33", "3+33=36", "34+36=70"]
    );
    assert_eq!(s.reason(), "");
    assert_eq!(reward(&p(), TraceMode::Apr, &good), 1.0);
    assert_eq!(reward(&p(), TraceMode::Sosp, &good), 0.0);
}

#[test]
fn apr_parent_that_rewrites_a_wrong_path_after_a_solved_child_fails() {
    // The child's message solved it; the parent's own path is wrong
    // (`3*33=36`). The first `Goal Reached` of the text is the child's.
    let bad = format!("{PRE}{JOIN}{}", PATH.replace("3+33=36, R", "3*33=36, R"));
    let s = apr(&bad);
    assert!(!s.solved());
    assert!(matches!(
        s.verdict,
        Err(Unsolved::WrongArithmetic { step: 1, .. })
    ));
    // A path that ends on another number.
    let short = format!(
        "{PRE}{JOIN}70,70 equal: Goal Reached\nMoving to Node #0\n\
Exploring Operation: 98-65=33, Resulting Numbers: [3, 34, 33]\n70,70 equal: Goal Reached\n"
    );
    assert!(matches!(
        apr(&short).verdict,
        Err(Unsolved::WrongTarget { .. })
    ));
}

#[test]
fn apr_parent_with_a_valid_path_after_a_wrong_child_message_is_solved() {
    // The first child message is wrong arithmetic; the parent's path is right.
    let join = JOIN.replace(
        "34+36=70, Resulting Numbers: [70]\n70,70",
        "34*36=70, Resulting Numbers: [70]\n70,70",
    );
    assert_ne!(join, JOIN);
    assert!(apr(&format!("{PRE}{join}{PATH}")).solved());
}

#[test]
fn apr_correct_path_counts_when_other_lines_do_not_parse() {
    let text = format!("{PRE}this line is not in the grammar\n{JOIN}{PATH}");
    assert!(apr(&text).solved());
    let text = format!("{PRE}{JOIN}{PATH}trailing junk 123 [\n");
    assert!(apr(&text).solved());
}

#[test]
fn apr_truncated_final_call_is_not_solved() {
    let full = format!("{PRE}{JOIN}{PATH}");
    // Cut inside the parent's path: the second-to-last `Goal Reached` is
    // now the child's, whose path does not start from the problem.
    let cut = &full[..full.len() - 30];
    let s = apr(cut);
    assert!(!s.solved(), "{s:?}");
    // Cut before the join block ends: one `Goal Reached` line is not enough.
    let s = apr(&full[..PRE.len() + 60]);
    assert!(matches!(s.verdict, Err(Unsolved::NoAnswer(_))), "{s:?}");
    assert_eq!(s.answer, None);
    assert!(!apr("").solved());
}

#[test]
fn apr_replay_uses_each_number_once_and_checks_written_numbers() {
    // 34 used twice.
    let twice = "Goal Reached\n70,70 equal: Goal Reached\n\
Exploring Operation: 34+34=68, Resulting Numbers: [98, 3, 65, 68]\n\
70,70 equal: Goal Reached\n";
    let t = Problem {
        nums: vec![98, 3, 34, 65],
        target: 70,
    };
    assert!(matches!(
        score(&t, TraceMode::Apr, twice).verdict,
        Err(Unsolved::WrongNumbers { step: 0, .. })
    ));
    let lie = format!("{PRE}{JOIN}{}", PATH.replace("[34, 36]\n", "[34, 37]\n"));
    assert!(matches!(
        apr(&lie).verdict,
        Err(Unsolved::WrongResultingNumbers { step: 1, .. })
    ));
    let junk = format!("{PRE}{JOIN}{}", PATH.replace("[34, 36]\n", "[34, x]\n"));
    assert!(matches!(apr(&junk).verdict, Err(Unsolved::Malformed(_))));
}

/// A SoS+ search that finds the path of `PATH` (its lines from the first
/// `Current State` on).
fn search() -> &'static str {
    &PATH[PATH.find("Current State").unwrap()..]
}

fn sosp(text: &str) -> Score {
    score(&p(), TraceMode::Sosp, text)
}

#[test]
fn sosp_reads_the_rewritten_path() {
    let good = format!("{0}Moving to Node #0\n{0}", search());
    let s = sosp(&good);
    assert_eq!(s.verdict, Ok(()));
    assert_eq!(
        s.answer_strings().unwrap(),
        ["98-65=33", "3+33=36", "34+36=70"]
    );
    // A conditioning prefix before the first state is ignored.
    assert!(sosp(&format!("Token Budget: 512 {good}")).solved());
    // No rewritten path after the first goal.
    assert!(matches!(sosp(search()).verdict, Err(Unsolved::NoAnswer(_))));
    assert!(matches!(sosp("junk").verdict, Err(Unsolved::NoAnswer(_))));
}

#[test]
fn sosp_failures() {
    let good = format!("{0}Moving to Node #0\n{0}", search());
    // The final operation does not give the target.
    let at = good.rfind("34+36=70").unwrap();
    let mut w = good.clone();
    w.replace_range(at..at + 8, "34+36=71");
    assert!(matches!(
        sosp(&w).verdict,
        Err(Unsolved::WrongTarget { .. })
    ));
    // Wrong arithmetic in the rewritten list.
    let at = good.rfind("'3+33=36'").unwrap();
    let mut a = good.clone();
    a.replace_range(at..at + 9, "'3+33=37'");
    assert!(matches!(
        sosp(&a).verdict,
        Err(Unsolved::WrongArithmetic { step: 1, .. })
    ));
    // Another problem's text.
    let other = Problem {
        nums: vec![98, 3, 34, 66],
        target: 70,
    };
    assert_eq!(
        score(&other, TraceMode::Sosp, &good).verdict,
        Err(Unsolved::WrongProblem)
    );
}

#[test]
fn sosp_path_that_uses_a_number_twice_fails() {
    // 10 is used twice; the official replay accepts it (it compares the
    // numbers with strings and never removes one).
    let q = Problem {
        nums: vec![10, 50, 7],
        target: 70,
    };
    let search = "Current State: 70:[10, 50, 7], Operations: []
Exploring Operation: 10+50=60, Resulting Numbers: [7, 60]
Generated Node #0,0: 70:[7, 60] Operation: 10+50=60
Moving to Node #0,0
Current State: 70:[7, 60], Operations: ['10+50=60']
Exploring Operation: 60+10=70, Resulting Numbers: [7, 70]
70,70 equal: Goal Reached
";
    let text = format!("{search}Moving to Node #0\n{search}");
    let s = score(&q, TraceMode::Sosp, &text);
    assert_eq!(
        s.verdict,
        Err(Unsolved::WrongNumbers {
            step: 1,
            op: Op {
                lhs: 60,
                kind: OpKind::Add,
                rhs: 10,
                result: 70
            }
        })
    );
    assert_eq!(s.answer_strings().unwrap(), ["10+50=60", "60+10=70"]);
}

#[test]
fn sosp_path_that_leaves_a_number_unused_fails() {
    // 30+40=70 from [30, 40, 5]: the official accepts it (it only checks
    // the operands and the final result); the game needs every number.
    let q = Problem {
        nums: vec![30, 40, 5],
        target: 70,
    };
    let text = "Current State: 70:[30, 40, 5], Operations: []
Exploring Operation: 30+40=70, Resulting Numbers: [5, 70]
70,70 equal: Goal Reached
Moving to Node #0
Current State: 70:[30, 40, 5], Operations: []
Exploring Operation: 30+40=70, Resulting Numbers: [5, 70]
70,70 equal: Goal Reached
";
    let s = score(&q, TraceMode::Sosp, text);
    assert_eq!(
        s.verdict,
        Err(Unsolved::WrongTarget {
            remaining: NumList::from_slice(&[5, 70])
        })
    );
}

#[test]
fn goal_lines_and_operations_follow_the_official_patterns() {
    assert_eq!(last_goal_line("x 12,70 equal: Goal Reached\n"), Some(2));
    assert_eq!(last_goal_line(",70 equal: Goal Reached"), None);
    assert_eq!(
        last_goal_line("7,70 equal: Goal Reached\n70,70 equal: Goal Reached"),
        Some(25)
    );
    assert_eq!(
        sosp_operations(
            "Exploring Operation: 1+2=3, Resulting Numbers: [3]\nExploring Operation: 4*5=20, Resulting Numbers: [20\n"
        ),
        ["1+2=3"]
    );
    assert_eq!(
        last_state_ops("Current State: 7:[1, 6], Operations: ['1+1=2']\n"),
        Some("'1+1=2'")
    );
    assert_eq!(
        apr_answer("a Goal Reached\nb Goal Reached\nc"),
        Some("b Goal Reached\nc")
    );
    assert_eq!(apr_answer("Goal Reached"), None);
}

#[test]
fn the_task_grades_by_score_and_describes_the_problem() {
    use apr_trace::Task;
    let good = format!("{0}Moving to Node #0\n{0}", search());
    let g = p().grade(TraceMode::Sosp, &good);
    assert!(g.solved);
    assert_eq!(g.unsolved, None);
    assert_eq!(g.answer.unwrap(), ["98-65=33", "3+33=36", "34+36=70"]);
    // A root prompt alone has no answer; the reason is score()'s.
    let text = p().root_prompt(TraceMode::Apr);
    let g = p().grade(TraceMode::Apr, &text);
    assert!(!g.solved && g.answer.is_none());
    assert_eq!(g.unsolved, Some(apr(&text).reason()));
    assert!(!apr(&text).reason().is_empty());
    assert_eq!(
        p().root_prompt(TraceMode::Sosp),
        "Current State: 70:[98, 3, 34, 65], Operations: []\n"
    );
    assert_eq!(
        serde_json::Value::Object(p().describe()).to_string(),
        r#"{"nums":[98,3,34,65],"target":70}"#
    );
}
