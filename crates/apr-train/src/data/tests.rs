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
        continuation_weight: 1.0,
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
    let (from, cont) = loss_from(&tok, p, text, &ids, &data_cfg(false)).unwrap();
    // The trained part is the generated rest and `</s>`, and it is the
    // weighted continuation.
    let rest = tok.call_ids(None, "No solution found.\n");
    assert_eq!(&ids[from..ids.len() - 1], &rest[1..]);
    assert_eq!(ids[ids.len() - 1], EOS_ID);
    assert_eq!(cont, Some(from));
    assert_eq!(
        loss_from(&tok, p, text, &ids, &data_cfg(true)),
        Some((0, Some(from)))
    );
    let first_call = "Moving to Node #0\nCurrent State: 24:[6, 4], Operations: []\n";
    let ids = tokens(&tok, None, first_call, 4096);
    assert_eq!(
        loss_from(&tok, None, first_call, &ids, &data_cfg(false)),
        Some((0, None))
    );
}

#[test]
fn continuation_tokens_carry_the_continuation_weight() {
    // Sequence 0: 10 tokens, loss from 4, continuation from 7; sequence 1:
    // 5 tokens, loss from 0 (so from target 1), no continuation.
    let w = LossWeights {
        from: vec![4, 0],
        weighted_from: vec![7, usize::MAX],
        weight: 3.0,
    };
    let row0: Vec<f32> = (0..12).map(|k| w.at(0, k, 10)).collect();
    assert_eq!(row0, [0., 0., 0., 0., 1., 1., 1., 3., 3., 3., 0., 0.]);
    let row1: Vec<f32> = (0..6).map(|k| w.at(1, k, 5)).collect();
    assert_eq!(row1, [0., 1., 1., 1., 1., 0.]);
    // 3 x 1 + 3 x 3 and 4 x 1.
    assert_eq!((w.total(0, 10), w.total(1, 5)), (12.0, 4.0));
    // Cut inside the weighted part, and before it.
    assert_eq!((w.total(0, 8), w.total(0, 6)), (6.0, 2.0));
    // A corpus's validation part is unweighted.
    assert_eq!(Corpus::default().val_loss.weight, 1.0);
}

#[test]
fn only_the_parents_continuations_are_weighted() {
    let tok = TraceTokenizer::new();
    let r = reference("apr.jsonl", 0);
    let seqs = sequences(&r, TraceKind::Apr, &data_cfg(false), &tok, 1 << 20).unwrap();
    // The root's second call is its continuation; the rest are first
    // calls (the root's and six children's).
    let weighted: Vec<bool> = seqs.iter().map(|s| s.continuation_from.is_some()).collect();
    assert_eq!(
        weighted,
        [false, true, false, false, false, false, false, false]
    );
    assert_eq!(seqs[1].continuation_from, Some(seqs[1].loss_from));
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
        assert_eq!(seqs[i].ids, tokens(&tok, budget, call, 1 << 20));
    }
    assert_eq!(
        seqs[2].ids,
        tokens(&tok, None, &d.sub_calls[0][0].main_calls[0], 1 << 20)
    );
    // Unconditioned: no prefix anywhere.
    let cfg = DataConfig {
        conditioning: ConditioningMode::None,
        ..data_cfg(false)
    };
    let seqs = sequences(&r, TraceKind::Apr, &cfg, &tok, 1 << 20).unwrap();
    assert_eq!(seqs[0].ids, tokens(&tok, None, &d.main_calls[0], 1 << 20));
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
    assert_eq!((s[1].ids.len(), s[1].loss_from), (prompt + 1, prompt));
    // Cut at the prompt's end or inside it: no token carries loss.
    assert_eq!(run(prompt).len(), 7);
    let s = run(prompt - 1);
    assert_eq!(s.len(), 7);
    assert!(s.iter().all(|s| s.loss_from.max(1) < s.ids.len()));
    // Training on inserted tokens keeps it, from position 0.
    let all = DataConfig {
        loss_on_inserted: true,
        ..data_cfg(false)
    };
    let s = sequences(&r, TraceKind::Apr, &all, &tok, prompt - 1).unwrap();
    assert_eq!((s.len(), s[1].loss_from), (8, 0));
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
