//! `countdown-apr-rl` end to end on a miniature configuration: every stage
//! runs and writes its results and the report; a second run finds every
//! stage cached and writes the same report.

use apr_experiments::pipeline::{self, Cli, DEFAULT_CONFIG};

fn set(v: &mut toml::Value, path: &str, x: toml::Value) {
    let mut cur = v;
    let parts: Vec<&str> = path.split('.').collect();
    for p in &parts[..parts.len() - 1] {
        cur = cur.get_mut(*p).unwrap_or_else(|| panic!("{path}"));
    }
    cur.as_table_mut()
        .unwrap()
        .insert(parts[parts.len() - 1].into(), x);
}

#[test]
fn miniature_run_writes_every_stage_and_resumes_from_cache() {
    let dir = tempfile::tempdir().unwrap();
    let mut v: toml::Value = toml::from_str(DEFAULT_CONFIG).unwrap();
    use toml::Value::{Float as F, Integer as I};
    set(&mut v, "problems.count", I(40));
    set(&mut v, "val.count", I(4));
    for (k, x) in [
        ("hidden_size", 32),
        ("intermediate_size", 64),
        ("num_layers", 1),
        ("num_heads", 2),
        ("num_kv_heads", 2),
    ] {
        set(&mut v, &format!("sft.model.{k}"), I(x));
    }
    for m in ["apr", "sosp"] {
        set(&mut v, &format!("sft.{m}.max_steps"), I(3));
        set(&mut v, &format!("sft.{m}.warmup_steps"), I(1));
        set(&mut v, &format!("sft.{m}.eval_every"), I(0));
        set(&mut v, &format!("grpo.{m}.optim.steps"), I(1));
        set(&mut v, &format!("grpo.{m}.optim.batch_problems"), I(2));
        set(&mut v, &format!("grpo.{m}.optim.group_size"), I(2));
        set(
            &mut v,
            &format!("grpo.{m}.optim.filter_zero_advantage"),
            toml::Value::Boolean(false),
        );
        set(
            &mut v,
            &format!("grpo.{m}.rollout.limits.max_new_tokens"),
            I(12),
        );
    }
    set(&mut v, "grpo.val_limit", I(2));
    set(&mut v, "eval.settings.limits.max_new_tokens", I(12));
    set(
        &mut v,
        "eval.settings.apr_budgets",
        toml::Value::Array(vec![I(1)]),
    );
    set(&mut v, "eval.settings.sosp_samples", I(2));
    set(&mut v, "eval.settings.apr_samples", I(2));
    set(
        &mut v,
        "eval.settings.temperatures",
        toml::Value::Array(vec![F(1.0)]),
    );
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, toml::to_string(&v).unwrap()).unwrap();
    let out = dir.path().join("run");
    let cli = || Cli {
        config: Some(cfg.clone()),
        out: Some(out.clone()),
        force: false,
        device: "cpu".into(),
        quiet: true,
        generation: Default::default(),
    };
    pipeline::run(cli()).unwrap();
    for f in [
        "config.toml",
        "val.jsonl",
        "problems.jsonl",
        "apr-traces.jsonl",
        "sosp-traces.jsonl",
        "apr-sft/model/model.safetensors",
        "sosp-sft/loss.svg",
        "apr-grpo/model/config.json",
        "sosp-grpo/metrics.jsonl",
        "eval/sosp-sft/samples.jsonl",
        "eval/apr-sft/samples.jsonl",
        "eval/apr-sft/temperature-1.jsonl",
        "eval/apr-grpo/eval.json",
        "stages.json",
        "accuracy-total-tokens.svg",
        "report.md",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    for s in [
        "## SFT",
        "## GRPO",
        "apr-grpo",
        "sosp-sft",
        "cons@n",
        "## Paper vs this run",
        "| SFT works",
        "| GRPO helps APR",
        "| Better scaling with total tokens",
        "| apr-sft | ",
        "**all stages**",
        "at 2048 tokens",
    ] {
        assert!(report.contains(s), "{s}");
    }
    // The headline models are unconditioned: no budget sweep; and models
    // not listed in `eval.sweep` get no samples.
    assert!(!out.join("eval/apr-sft/budget-1.jsonl").exists());
    assert!(!out.join("eval/apr-grpo/samples.jsonl").exists());
    let t = std::time::Instant::now();
    pipeline::run(cli()).unwrap();
    assert!(
        t.elapsed().as_secs_f64() < 5.0,
        "every stage should be cached"
    );
    let again = std::fs::read_to_string(out.join("report.md")).unwrap();
    // Everything from the recorded stage times on is the same, the times
    // included (they come from `stages.json`, not from this invocation).
    let body = |s: &str| {
        s.split("Seconds each stage")
            .nth(1)
            .unwrap_or("")
            .to_string()
    };
    assert!(!body(&report).is_empty());
    assert_eq!(body(&report), body(&again));

    // A summary with a null loss (older versions wrote one on a rerun of a
    // finished SFT) is mended, not fatal.
    let sp = out.join("apr-sft/summary.json");
    let mut sv: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sp).unwrap()).unwrap();
    let loss = sv["final_train_loss"].as_f64().unwrap();
    sv["final_train_loss"] = serde_json::Value::Null;
    std::fs::write(&sp, sv.to_string()).unwrap();
    pipeline::run(cli()).unwrap();
    let sv: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sp).unwrap()).unwrap();
    assert_eq!(sv["final_train_loss"].as_f64(), Some(loss));

    // A folder from before fingerprints is judged by its recorded config:
    // a changed seed is still refused there.
    std::fs::remove_file(out.join("fingerprints.json")).unwrap();
    let mut reseeded = v.clone();
    set(&mut reseeded, "seed", I(2));
    std::fs::write(&cfg, toml::to_string(&reseeded).unwrap()).unwrap();
    let e = pipeline::run(cli()).unwrap_err().to_string();
    assert!(e.contains("[problems] seed: 1 -> 2"), "{e}");
    std::fs::write(&cfg, toml::to_string(&v).unwrap()).unwrap();
    pipeline::run(cli()).unwrap();

    // A changed setting that a finished stage depends on is refused before
    // any work, naming the stages and keys; the recorded config stays.
    let recorded = std::fs::read_to_string(out.join("config.toml")).unwrap();
    let write = |v: &toml::Value| std::fs::write(&cfg, toml::to_string(v).unwrap()).unwrap();
    let mut changed = v.clone();
    set(&mut changed, "sft.apr.lr", F(1e-3));
    write(&changed);
    let e = pipeline::run(cli()).unwrap_err().to_string();
    assert!(e.contains("[apr-sft] sft.optim.lr: 0.002 -> 0.001"), "{e}");
    assert!(e.contains("[eval apr-grpo] model.sft.sft.optim.lr"), "{e}");
    assert!(!e.contains("[sosp-sft]"), "{e}");
    assert_eq!(
        std::fs::read_to_string(out.join("config.toml")).unwrap(),
        recorded
    );
    // A time limit may change: every stage stays cached.
    let mut limited = v.clone();
    set(&mut limited, "sft.apr.time_limit_minutes", F(60.0));
    write(&limited);
    pipeline::run(cli()).unwrap();
    // A second process on the same folder fails at once.
    let held = apr_train::run_dir::RunLock::acquire(&out).unwrap();
    let e = pipeline::run(cli()).unwrap_err().to_string();
    assert!(e.contains("in use by process"), "{e}");
    drop(held);

    // A bad [grpo.*] section is found before the first stage runs.
    let mut bad = v.clone();
    set(&mut bad, "grpo.apr.optim.group_size", I(1));
    write(&bad);
    let fresh = dir.path().join("fresh");
    let e = pipeline::run(Cli {
        out: Some(fresh.clone()),
        ..cli()
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("[grpo.apr]") && e.contains("group_size"), "{e}");
    assert!(!fresh.join("val.jsonl").exists());
}
