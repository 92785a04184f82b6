//! An evaluation end to end with a small random model: every run of the
//! sweeps writes its per-problem file, the summary has every sweep point,
//! and the report names every figure it writes.

use apr_countdown::ProblemSpec;
use apr_eval::{evaluate, EvalConfig};
use apr_model::{Llama, ModelConfig};
use apr_rollout::Mode;
use std::collections::HashSet;

#[test]
fn sweeps_files_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ProblemSpec::default();
    let problems: Vec<_> = (0..3)
        .map(|i| spec.problem(2, i, &HashSet::new()).unwrap())
        .collect();
    let mut c = ModelConfig::preset("tiny").unwrap();
    c.hidden_size = 32;
    c.intermediate_size = 64;
    c.num_layers = 1;
    c.num_heads = 2;
    c.num_kv_heads = 2;
    c.max_seq_len = 64;
    let model: Llama<apr_model::Cpu> = Llama::init(&c, 1, &Default::default());
    let mut cfg = EvalConfig {
        slots: 8,
        apr_budgets: vec![1, 2],
        sosp_budgets: vec![512],
        temperatures: vec![1.0],
        sosp_samples: 3,
        context_windows: vec![16, 64],
        ..EvalConfig::default()
    };
    cfg.limits.max_new_tokens = 6;
    let apr = evaluate(
        "apr",
        &model,
        Mode::Apr,
        &problems,
        &cfg,
        &dir.path().join("apr"),
        false,
    )
    .unwrap();
    assert_eq!(apr.problems, 3);
    assert_eq!(
        apr.budgets.iter().map(|p| p.value).collect::<Vec<_>>(),
        vec![1.0, 2.0]
    );
    assert_eq!(apr.temperatures.len(), 1);
    assert!(apr.at_n.is_empty(), "APR samples are off by default");
    assert_eq!(apr.context.len(), 2);
    for f in [
        "greedy.jsonl",
        "budget-1.jsonl",
        "budget-2.jsonl",
        "temperature-1.jsonl",
        "eval.json",
    ] {
        assert!(dir.path().join("apr").join(f).exists(), "{f}");
    }
    let lines = std::fs::read_to_string(dir.path().join("apr/greedy.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 3);
    let sosp = evaluate(
        "sosp",
        &model,
        Mode::Single,
        &problems,
        &cfg,
        &dir.path().join("sosp"),
        false,
    )
    .unwrap();
    assert_eq!(
        sosp.at_n.iter().map(|a| a.n).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    // pass@n never falls as n grows.
    assert!(sosp.at_n.windows(2).all(|w| w[1].pass >= w[0].pass));
    let lines = std::fs::read_to_string(dir.path().join("sosp/samples.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 9);
    let md = apr_eval::report::write_report(&[apr, sosp], dir.path()).unwrap();
    for f in apr_eval::report::figures(&[]).iter().map(|f| f.0.clone()) {
        assert!(md.contains(&f), "{f}");
        assert!(dir.path().join(&f).exists(), "{f}");
    }
    assert!(md.contains("cons@n"));
    // APR models are sampled when asked (their token-scaling curve).
    cfg.apr_samples = 2;
    cfg.greedy_only();
    assert_eq!(cfg.apr_samples, 0, "greedy_only drops the APR samples");
    cfg.apr_samples = 2;
    let apr = evaluate(
        "apr2",
        &model,
        Mode::Apr,
        &problems,
        &cfg,
        &dir.path().join("apr2"),
        false,
    )
    .unwrap();
    assert_eq!(apr.at_n.iter().map(|a| a.n).collect::<Vec<_>>(), vec![1, 2]);
    let lines = std::fs::read_to_string(dir.path().join("apr2/samples.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 6);
}
