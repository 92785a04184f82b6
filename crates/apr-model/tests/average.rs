//! Averaging saved checkpoints: the mean loads as a model of the same
//! shape, and checkpoints of different shapes or tokenizers are refused.

mod common;

use apr_model::average::average_dirs;
use apr_model::checkpoint::{self, hf_tensors};
use apr_model::Llama;
use common::*;

#[test]
fn the_average_of_saved_models_loads_and_is_their_mean() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (model(), Llama::<B>::init(&config(), 8, &Default::default()));
    checkpoint::save(&a, &dir.path().join("a"), Some("{}")).unwrap();
    checkpoint::save(&b, &dir.path().join("b"), Some("{}")).unwrap();
    let out = dir.path().join("mean");
    average_dirs(&[dir.path().join("a"), dir.path().join("b")], &out).unwrap();
    let m: Llama<B> = checkpoint::load(&out, &Default::default()).unwrap();
    assert_eq!(m.config, a.config);
    let (ta, tb, tm) = (hf_tensors(&a), hf_tensors(&b), hf_tensors(&m));
    assert_eq!(ta.keys().collect::<Vec<_>>(), tm.keys().collect::<Vec<_>>());
    for (name, t) in &tm {
        for (i, v) in t.data.iter().enumerate() {
            let want = ((ta[name].data[i] as f64 + tb[name].data[i] as f64) / 2.0) as f32;
            assert_eq!(*v, want, "{name}[{i}]");
        }
    }
    assert_ne!(tm, ta);
    assert_eq!(std::fs::read(out.join("tokenizer.json")).unwrap(), b"{}");
}

#[test]
fn mismatched_checkpoints_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    checkpoint::save(&model(), &dir.path().join("a"), Some("{}")).unwrap();
    checkpoint::save(&model(), &dir.path().join("tok"), Some("{ }")).unwrap();
    let mut wide = config();
    wide.intermediate_size *= 2;
    let w = Llama::<B>::init(&wide, 1, &Default::default());
    checkpoint::save(&w, &dir.path().join("wide"), Some("{}")).unwrap();
    let out = dir.path().join("mean");
    for other in ["tok", "wide", "missing"] {
        let e = average_dirs(&[dir.path().join("a"), dir.path().join(other)], &out);
        assert!(e.is_err(), "{other}");
        assert!(!out.exists(), "{other}: nothing is written");
    }
    let none: [std::path::PathBuf; 0] = [];
    assert!(average_dirs(&none, &out).is_err());
}
