use super::*;

fn runner<'a>(cli: &'a Cli, text: &str, name: &str) -> Runner<'a> {
    let c = Config::from_toml(text, name).unwrap();
    Runner {
        cli,
        dir: c.out_dir.clone(),
        cfg: c,
        fingerprints: Default::default(),
    }
}

fn check_stages(r: &Runner) {
    r.validate_all("preset").unwrap();
}

#[test]
fn embedded_config_parses_and_builds_valid_stage_configs() {
    assert!(Config::from_toml("seed = 1", "x").is_err());
    let cli = Cli::parse_from(["countdown-apr-rl"]);
    let r = runner(&cli, DEFAULT_CONFIG, "embedded");
    check_stages(&r);
    assert_eq!(r.grpo_config("apr", Path::new("v")).rollout.mode, Mode::Apr);
    assert_eq!(
        r.grpo_config("sosp", Path::new("v")).rollout.mode,
        Mode::Single
    );
}

const SMOKE: &str = include_str!("../../configs/countdown-apr-rl-smoke.toml");

/// Every preset ends each stage on a step count (no time limit), so a
/// rerun on the same machine gives the same numbers; `smoke` runs every
/// stage, the conditioned APR model included.
#[test]
fn presets_end_on_step_counts_and_smoke_runs_every_stage() {
    let cli = Cli::parse_from(["countdown-apr-rl"]);
    for (name, text) in [
        ("tiny", DEFAULT_CONFIG),
        ("smoke", SMOKE),
        (
            "cpu-long",
            include_str!("../../configs/countdown-apr-rl-cpu-long.toml"),
        ),
        ("small", SMALL),
        ("paper", PAPER),
        ("grpo-long", GRPO_LONG),
    ] {
        let r = runner(&cli, text, name);
        check_stages(&r);
        let s = &r.cfg.sft;
        for o in [Some(&s.apr), Some(&s.sosp), s.apr_cond.as_ref()]
            .into_iter()
            .flatten()
        {
            assert_eq!(o.time_limit_minutes, None, "{name}");
        }
        for m in [&r.cfg.grpo.apr, &r.cfg.grpo.sosp] {
            assert_eq!(m.optim.time_limit_minutes, None, "{name}");
        }
    }
    let r = runner(&cli, SMOKE, "smoke");
    assert_eq!(r.sft_stages().len(), 3);
}

/// The default preset measures what issue 18 asks of it: 1,000
/// validation problems, the paper's unconditioned headline pair, and
/// samples of both SFT models for the token-scaling comparison.
#[test]
fn tiny_preset_samples_both_sft_models_on_1000_problems() {
    let cli = Cli::parse_from(["countdown-apr-rl"]);
    let r = runner(&cli, DEFAULT_CONFIG, "tiny");
    assert!(r.cfg.val.count >= 1000 && r.cfg.val.file.is_none());
    assert_eq!(r.cfg.sft.conditioning, ConditioningMode::None);
    let s = |name| r.eval_settings(&r.cfg.eval.settings, name);
    assert!(s("sosp-sft").sosp_samples >= 4);
    assert!(s("apr-sft").apr_samples >= 2);
    assert_eq!(
        (s("apr-grpo").apr_samples, s("sosp-grpo").sosp_samples),
        (0, 0)
    );
    // The APR parent's post-join tokens weigh 5; SoS+ has no join.
    let weight = |stem: &str| {
        let (_, kind, cond, optim) = r.sft_stages().into_iter().find(|s| s.0 == stem).unwrap();
        r.sft_config(stem, kind, cond, optim)
            .data
            .continuation_weight
    };
    assert_eq!((weight("apr"), weight("sosp")), (5.0, 1.0));
    // APR traces in generation order, SoS+ in the official shuffled one:
    // each the order its SFT scored higher in (docs/countdown-data.md).
    assert_eq!(
        (r.cfg.apr.order, r.cfg.sosp.order),
        (
            apr_countdown::MoveOrder::Generation,
            apr_countdown::MoveOrder::Shuffled
        )
    );
}

const GRPO_LONG: &str = include_str!("../../configs/countdown-apr-rl-grpo-long.toml");

/// `grpo-long` is the default with another GRPO: every stage before GRPO
/// (data, SFT, the SFT models' evaluations) has the default's fingerprint,
/// so a default run's folder serves it; both GRPO stages sample at 0.6,
/// train the tempered policy, and take 80 steps at 4e-5.
#[test]
fn grpo_long_changes_only_grpo() {
    let cli = Cli::parse_from(["countdown-apr-rl"]);
    let fp = |text, name| {
        let mut r = runner(&cli, text, name);
        r.dir = PathBuf::from("d");
        r.cfg.out_dir = PathBuf::from("d");
        super::plan::fingerprints(&r.plan().unwrap())
    };
    let (tiny, long) = (fp(DEFAULT_CONFIG, "tiny"), fp(GRPO_LONG, "grpo-long"));
    assert_eq!(
        tiny.keys().collect::<Vec<_>>(),
        long.keys().collect::<Vec<_>>()
    );
    let differ: Vec<&str> = tiny
        .iter()
        .filter(|(k, v)| long[*k] != **v)
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(
        differ,
        ["apr-grpo", "eval apr-grpo", "eval sosp-grpo", "sosp-grpo"]
    );
    let r = runner(&cli, GRPO_LONG, "grpo-long");
    for m in ["apr", "sosp"] {
        let g = r.grpo_config(m, Path::new("v"));
        let s = &g.rollout.sampling;
        assert_eq!(
            (s.temperature, s.logprobs),
            (0.6, apr_rollout::LogprobBase::Tempered)
        );
        assert_eq!((g.optim.lr, g.optim.steps), (4e-5, 80));
    }
}

const SMALL: &str = include_str!("../../configs/countdown-apr-rl-small.toml");
const PAPER: &str = include_str!("../../configs/countdown-apr-rl-paper.toml");

/// The presets that claim the paper's setting run its headline pair
/// unconditioned, the conditioned APR model as its own stage, one level
/// of spawning, no binding cap on children, and the paper's GRPO.
#[test]
fn paper_presets_are_the_papers() {
    let cli = Cli::parse_from(["countdown-apr-rl"]);
    for (name, text) in [("small", SMALL), ("paper", PAPER)] {
        let r = runner(&cli, text, name);
        check_stages(&r);
        let c = &r.cfg;
        assert_eq!(
            (c.preset.as_str(), c.sft.model.preset.as_str()),
            (name, name)
        );
        assert_eq!(c.sft.conditioning, ConditioningMode::None);
        let stages: Vec<_> = r.sft_stages().iter().map(|s| (s.0, s.2)).collect();
        assert_eq!(
            stages,
            [
                ("apr", ConditioningMode::None),
                ("sosp", ConditioningMode::None),
                ("apr-cond", ConditioningMode::Budget)
            ]
        );
        for (m, kl) in [("apr", 0.001), ("sosp", 0.01)] {
            let g = r.grpo_config(m, Path::new("v"));
            assert_eq!((g.optim.batch_problems, g.optim.group_size), (64, 5));
            assert_eq!((g.optim.lr, g.optim.kl_coef), (1e-5, kl));
            assert_eq!((g.optim.inner_steps, g.optim.clip_eps), (2, 0.2));
            assert!(!g.optim.filter_zero_advantage);
            assert_eq!(g.rollout.budget, None);
            assert_eq!(g.rollout.sampling.temperature, 1.0);
        }
        let l = &r.grpo_config("apr", Path::new("v")).rollout.limits;
        assert_eq!(l.max_depth, 1);
        assert!(l.max_children >= 4096 && l.max_rounds >= 4096);
        let l = &c.eval.settings.limits;
        assert_eq!(l.max_depth, 1);
        assert!(l.max_children >= 4096 && l.max_rounds >= 4096);
        // Headline models run unconditioned; the conditioned one sweeps.
        let e = r.eval_settings(&c.eval.settings, "apr-sft");
        assert_eq!((e.apr_budget, e.apr_budgets.len()), (None, 0));
        let e = r.eval_settings(&c.eval.settings, "apr-cond-sft");
        assert_eq!(e.apr_budget, Some(10));
        assert_eq!(e.apr_budgets, (0..=10).collect::<Vec<u32>>());
    }
    // The stand-alone SFT config of the paper is the pipeline's APR stage.
    let sft =
        apr_train::SftConfig::from_toml(include_str!("../../configs/sft-paper-apr.toml")).unwrap();
    let r = runner(&cli, PAPER, "paper");
    assert_eq!(sft.optim, r.cfg.sft.apr);
    assert_eq!(sft.optim.batch_sequences, Some(256));
    assert_eq!(r.cfg.sft.sosp.batch_sequences, Some(256));
    assert_eq!(sft.model, r.cfg.sft.model);
    assert_eq!(sft.data.conditioning, r.cfg.sft.conditioning);
}

#[test]
fn a_budget_for_an_unconditioned_model_is_refused() {
    let bad = PAPER.replace(
        "[grpo.apr.rollout]\nmode = \"apr\"\n",
        "[grpo.apr.rollout]\nmode = \"apr\"\nbudget = 10\n",
    );
    assert_ne!(bad, PAPER);
    let e = Config::from_toml(&bad, "p").unwrap_err().to_string();
    assert!(e.contains("unconditioned"), "{e}");
}

/// With `average_last` an SFT stage hands on the mean of its last
/// checkpoints: GRPO starts from it and the SFT evaluation loads it.
#[test]
fn an_averaging_sft_stage_hands_on_its_average() {
    let cli = Cli::parse_from(["countdown-apr-rl"]);
    let plain = runner(&cli, DEFAULT_CONFIG, "embedded");
    let avg = DEFAULT_CONFIG.replace("[sft.apr]\n", "[sft.apr]\naverage_last = 5\n");
    assert_ne!(avg, DEFAULT_CONFIG);
    let avg = runner(&cli, &avg, "averaging");
    check_stages(&avg);
    let init = |r: &Runner, m: &str| r.grpo_config(m, Path::new("v")).init;
    let dir = &plain.dir;
    assert_eq!(init(&plain, "apr"), dir.join("apr-sft/model"));
    assert_eq!(init(&avg, "apr"), dir.join("apr-sft/model-avg"));
    assert_eq!(init(&avg, "sosp"), dir.join("sosp-sft/model"));
    assert_eq!(avg.sft_model("apr"), dir.join("apr-sft/model-avg"));
}
