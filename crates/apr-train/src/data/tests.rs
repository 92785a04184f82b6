use super::*;

fn data_cfg(loss_on_inserted: bool) -> DataConfig {
    DataConfig {
        train: vec![],
        kind: TraceKind::Apr,
        conditioning: ConditioningMode::Budget,
        val_fraction: 0.0,
        val_max_sequences: 0,
        max_problems: None,
        solved_only: false,
        token_budget_bin: 512,
        loss_on_inserted,
    }
}

/// Record `n` (0-based) of a file of `datasets/reference-samples`.
fn reference(file: &str, n: usize) -> TraceRecord {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../datasets/reference-samples")
        .join(file);
    read_traces(&p, None).unwrap().swap_remove(n)
}

#[test]
fn continuation_loss_starts_after_the_join_block() {
    let tok = TraceTokenizer::new();
    let text = "Moving to Node #0\nCurrent State: 24:[6, 4], Operations: []\n<Sub Searches>\n<No Solution in Sub Search 0 at level 1 at Node #0,0>\n<End Sub Searches>\nNo solution found.\n";
    let p = Some(Conditioning::SubCallBudget(2));
    let ids = tokens(&tok, p, text, 4096);
    let from = loss_from(&tok, p, text, &ids, &data_cfg(false)).unwrap();
    // The trained part is the generated rest and `</s>`.
    let rest = tok.call_ids(None, "No solution found.\n");
    assert_eq!(&ids[from..ids.len() - 1], &rest[1..]);
    assert_eq!(ids[ids.len() - 1], EOS_ID);
    assert_eq!(loss_from(&tok, p, text, &ids, &data_cfg(true)), Some(0));
    let first_call = "Moving to Node #0\nCurrent State: 24:[6, 4], Operations: []\n";
    let ids = tokens(&tok, None, first_call, 4096);
    assert_eq!(
        loss_from(&tok, None, first_call, &ids, &data_cfg(false)),
        Some(0)
    );
}

#[test]
fn child_count_comes_from_the_trace_dict() {
    // The public layout: no `child_thread_count`. The first record's
    // root spawns 6 children in one round, none of which spawns; the
    // fifth's 10.
    let tok = TraceTokenizer::new();
    let r = reference("apr.jsonl", 0);
    assert_eq!(r.child_thread_count, None);
    assert_eq!(record_budget(&r, TraceKind::Apr, 512, &tok), 6);
    assert_eq!(
        record_budget(&reference("apr.jsonl", 4), TraceKind::Apr, 512, &tok),
        10
    );
    let seqs = sequences(&r, TraceKind::Apr, &data_cfg(false), &tok, 1 << 20).unwrap();
    // Two root calls (both prefixed) and six children.
    assert_eq!(seqs.len(), 8);
    let d = r.trace_dict.as_ref().unwrap();
    let budget = Some(Conditioning::SubCallBudget(6));
    for (i, call) in d.main_calls.iter().enumerate() {
        assert_eq!(seqs[i].0, tokens(&tok, budget, call, 1 << 20));
    }
    assert_eq!(
        seqs[2].0,
        tokens(&tok, None, &d.sub_calls[0][0].main_calls[0], 1 << 20)
    );
    // Unconditioned: no prefix anywhere.
    let cfg = DataConfig {
        conditioning: ConditioningMode::None,
        ..data_cfg(false)
    };
    let seqs = sequences(&r, TraceKind::Apr, &cfg, &tok, 1 << 20).unwrap();
    assert_eq!(seqs[0].0, tokens(&tok, None, &d.main_calls[0], 1 << 20));
}

#[test]
fn a_continuation_cut_inside_its_prompt_is_dropped() {
    let tok = TraceTokenizer::new();
    let r = reference("apr.jsonl", 0);
    let d = r.trace_dict.as_ref().unwrap();
    let cont = &d.main_calls[1];
    let budget = Some(Conditioning::SubCallBudget(6));
    let end = cont.rfind("<End Sub Searches>\n").unwrap() + 19;
    let prompt = tok.call_ids(budget, &cont[..end]).len();
    let cfg = data_cfg(false);
    let run = |max_len| sequences(&r, TraceKind::Apr, &cfg, &tok, max_len).unwrap();
    // Room for one generated token after the prompt: kept, its loss
    // from there.
    let s = run(prompt + 1);
    assert_eq!(s.len(), 8);
    assert_eq!((s[1].0.len(), s[1].1), (prompt + 1, prompt));
    // Cut at the prompt's end or inside it: no token carries loss.
    assert_eq!(run(prompt).len(), 7);
    let s = run(prompt - 1);
    assert_eq!(s.len(), 7);
    assert!(s.iter().all(|(ids, from)| from.max(&1) < &ids.len()));
    // Training on inserted tokens keeps it, from position 0.
    let all = DataConfig {
        loss_on_inserted: true,
        ..data_cfg(false)
    };
    let s = sequences(&r, TraceKind::Apr, &all, &tok, prompt - 1).unwrap();
    assert_eq!((s.len(), s[1].1), (8, 0));
}

#[test]
fn a_root_call_without_its_root_prompt_is_an_error() {
    let tok = TraceTokenizer::new();
    // SoS+ text starts `Current State`, APR text `Moving to Node #0`.
    let sosp = reference("sosp.jsonl", 0);
    let apr = reference("apr.jsonl", 0);
    let cfg = data_cfg(false);
    assert!(sequences(&sosp, TraceKind::Sosp, &cfg, &tok, 4096).is_ok());
    for (r, kind) in [(&sosp, TraceKind::Apr), (&apr, TraceKind::Sosp)] {
        let e = sequences(r, kind, &cfg, &tok, 4096).unwrap_err();
        assert!(
            matches!(&e, Error::Record { problem, .. } if problem.contains("target 70")),
            "{e}"
        );
    }
}

#[test]
fn steps_hold_the_batch_of_sequences_in_token_bounded_micro_batches() {
    let lens: Vec<usize> = (0..1000).map(|i| 10 + (i * 37) % 500).collect();
    let steps = epoch_steps(&lens, 256, 4096, 3, 0);
    // 1000 = 3 x 256 + 232.
    let mut sizes: Vec<usize> = steps
        .iter()
        .map(|s| s.iter().map(|b| b.rows.len()).sum())
        .collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [232, 256, 256, 256]);
    let mut seen: Vec<usize> = steps
        .iter()
        .flatten()
        .flat_map(|b| b.rows.clone())
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..1000).collect::<Vec<_>>());
    for b in steps.iter().flatten() {
        assert!(b.len * b.rows.len() <= 4096 || b.rows.len() == 1);
    }
    assert_eq!(steps, epoch_steps(&lens, 256, 4096, 3, 0));
    assert_ne!(steps, epoch_steps(&lens, 256, 4096, 3, 1));
}

#[test]
fn batches_cover_every_sequence_once_within_the_token_budget() {
    let lens: Vec<usize> = (0..1000).map(|i| 10 + (i * 37) % 500).collect();
    let b = epoch_batches(&lens, 2048, 3, 0);
    let mut seen: Vec<usize> = b.iter().flat_map(|x| x.rows.clone()).collect();
    seen.sort();
    assert_eq!(seen, (0..1000).collect::<Vec<_>>());
    for x in &b {
        assert_eq!(x.len, x.rows.iter().map(|&i| lens[i]).max().unwrap());
        assert!(x.len * x.rows.len() <= 2048 || x.rows.len() == 1);
    }
    assert_eq!(b, epoch_batches(&lens, 2048, 3, 0));
    assert_ne!(b, epoch_batches(&lens, 2048, 3, 1));
}
