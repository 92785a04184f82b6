//! Checkpoints: round trips, broken and inconsistent files, non-finite
//! weights, the saved tokenizer, interrupted directory switches.

mod common;

use apr_model::checkpoint::{self, hf_tensors};
use apr_model::{Llama, ModelConfig};
use burn::tensor::{Tensor, TensorData};
use common::*;

#[test]
fn checkpoint_round_trip_is_exact() {
    let m = model();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt");
    checkpoint::save(&m, &path, Some("{}")).unwrap();
    // Saving again replaces the directory whole.
    checkpoint::save(&m, &path, Some("{}")).unwrap();
    let back: Llama<B> = checkpoint::load(&path, &Default::default()).unwrap();
    assert_eq!(back.config, m.config);
    assert_eq!(hf_tensors(&back), hf_tensors(&m));
    let s = seq(10, 5);
    let a = host(m.forward(tokens(std::slice::from_ref(&s)), None));
    let b = host(back.forward(tokens(&[s]), None));
    assert_eq!(a, b);
    let names: Vec<String> = hf_tensors(&m).into_keys().collect();
    assert!(names.contains(&"model.layers.1.self_attn.k_proj.weight".to_string()));
    assert!(names.contains(&"lm_head.weight".to_string()));
    assert_eq!(
        hf_tensors(&m)["model.layers.0.self_attn.k_proj.weight"].shape,
        [16, 32]
    );
    assert!(path.join("tokenizer.json").exists());
}

/// Equal models save to equal bytes, so a rerun's checkpoints can be
/// compared by checksum. Each save builds its own metadata map, whose
/// iteration order (random per map) would show here with two entries.
#[test]
fn equal_models_save_to_equal_bytes() {
    let m = model();
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    checkpoint::save(&m, &first, None).unwrap();
    let want = std::fs::read(first.join(checkpoint::WEIGHTS)).unwrap();
    for i in 0..16 {
        let path = dir.path().join(format!("again-{i}"));
        checkpoint::save(&m, &path, None).unwrap();
        assert_eq!(std::fs::read(path.join(checkpoint::WEIGHTS)).unwrap(), want);
    }
}

#[test]
fn broken_checkpoints_give_errors() {
    let m = model();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt");
    checkpoint::save(&m, &path, None).unwrap();
    let w = path.join("model.safetensors");
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
    assert!(checkpoint::load::<B>(&path, &Default::default()).is_err());
    std::fs::write(&w, b"nonsense").unwrap();
    assert!(checkpoint::load::<B>(&path, &Default::default()).is_err());
    std::fs::write(path.join("config.json"), b"{").unwrap();
    assert!(checkpoint::load::<B>(&path, &Default::default()).is_err());
    assert!(checkpoint::load::<B>(&dir.path().join("missing"), &Default::default()).is_err());
}

/// The saved weights of `path`, by name.
fn read_weights(
    path: &std::path::Path,
) -> std::collections::BTreeMap<String, checkpoint::HostTensor> {
    let w = path.join(checkpoint::WEIGHTS);
    checkpoint::parse_safetensors(&std::fs::read(&w).unwrap(), &w).unwrap()
}

fn write_weights(
    path: &std::path::Path,
    t: &std::collections::BTreeMap<String, checkpoint::HostTensor>,
) {
    std::fs::write(
        path.join(checkpoint::WEIGHTS),
        checkpoint::safetensors_bytes(t).unwrap(),
    )
    .unwrap();
}

fn load_err(path: &std::path::Path) -> String {
    checkpoint::load::<B>(path, &Default::default())
        .unwrap_err()
        .to_string()
}

/// A `config.json` of one layer over a file of two does not load: the
/// second layer's tensors would be dropped without a word.
#[test]
fn tensors_the_config_does_not_use_are_an_error() {
    let m = model();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt");
    checkpoint::save(&m, &path, None).unwrap();
    let cpath = path.join(checkpoint::CONFIG);
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cpath).unwrap()).unwrap();
    cfg["num_hidden_layers"] = 1.into();
    std::fs::write(&cpath, serde_json::to_vec(&cfg).unwrap()).unwrap();
    let e = load_err(&path);
    // Layer 1's nine tensors are left; the first by name is named.
    assert!(
        e.contains("tensor model.layers.1.input_layernorm.weight and 8 more not used"),
        "{e}"
    );
    assert!(e.contains("model.safetensors"), "{e}");

    // A tensor of no model at all.
    cfg["num_hidden_layers"] = 2.into();
    std::fs::write(&cpath, serde_json::to_vec(&cfg).unwrap()).unwrap();
    let mut t = read_weights(&path);
    let extra = checkpoint::HostTensor {
        shape: vec![2],
        data: vec![1.0, 2.0],
    };
    t.insert("model.extra.weight".into(), extra.clone());
    write_weights(&path, &t);
    let e = load_err(&path);
    assert!(e.contains("tensor model.extra.weight not used"), "{e}");

    // The rotary buffers of older exports are allowed and ignored.
    t.remove("model.extra.weight");
    t.insert("model.layers.0.self_attn.rotary_emb.inv_freq".into(), extra);
    write_weights(&path, &t);
    let back: Llama<B> = checkpoint::load(&path, &Default::default()).unwrap();
    assert_eq!(hf_tensors(&back), hf_tensors(&m));
}

/// With tied embeddings, a head tensor in the file must be the embedding.
#[test]
fn a_tied_head_in_the_file_must_equal_the_embedding() {
    let cfg = ModelConfig {
        tie_embeddings: true,
        ..config()
    };
    let m: Llama<B> = Llama::init(&cfg, 3, &Default::default());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt");
    checkpoint::save(&m, &path, None).unwrap();
    let mut t = read_weights(&path);
    let mut head = t["model.embed_tokens.weight"].clone();
    assert_eq!(head.shape, [50, 32]);
    t.insert("lm_head.weight".into(), head.clone());
    write_weights(&path, &t);
    let back: Llama<B> = checkpoint::load(&path, &Default::default()).unwrap();
    assert_eq!(hf_tensors(&back), hf_tensors(&m));
    // One value off: not a tied head.
    head.data[77] += 0.5;
    t.insert("lm_head.weight".into(), head);
    write_weights(&path, &t);
    let e = load_err(&path);
    assert!(
        e.contains("lm_head.weight differs from model.embed_tokens.weight"),
        "{e}"
    );
}

#[test]
fn non_finite_weights_do_not_load() {
    let m = model();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt");
    checkpoint::save(&m, &path, None).unwrap();
    let mut t = read_weights(&path);
    let up = t.get_mut("model.layers.1.mlp.up_proj.weight").unwrap();
    assert_eq!(up.shape, [48, 32]);
    up.data[3] = f32::NAN;
    up.data[1000] = f32::NEG_INFINITY;
    write_weights(&path, &t);
    let e = load_err(&path);
    // 48 x 32 = 1536 values, two of them bad.
    assert!(
        e.contains("model.layers.1.mlp.up_proj.weight: 2 of 1536 values are not finite"),
        "{e}"
    );
}

#[test]
fn non_finite_weights_are_not_saved_and_the_old_checkpoint_stays() {
    let mut m = model();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt");
    checkpoint::save(&m, &path, Some("old")).unwrap();
    let before = std::fs::read(path.join(checkpoint::WEIGHTS)).unwrap();
    checkpoint::check_finite(&m).unwrap();
    let mut norm = vec![1.0f32; 32];
    norm[0] = f32::NAN;
    norm[5] = f32::INFINITY;
    norm[31] = f32::NAN;
    m.norm = burn::module::Param::from_tensor(Tensor::from_data(
        TensorData::new(norm, [32]),
        &Default::default(),
    ));
    let e = checkpoint::check_finite(&m).unwrap_err();
    assert!(
        matches!(&e, apr_model::Error::NonFinite { tensor, count: 3, total: 32 }
            if tensor == "model.norm.weight"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "model.norm.weight: 3 of 32 values are not finite (NaN or infinite)"
    );
    let e = checkpoint::save(&m, &path, Some("new")).unwrap_err();
    assert!(
        e.to_string().starts_with("model.norm.weight: 3 of 32"),
        "{e}"
    );
    // The old checkpoint is untouched and nothing was staged beside it.
    assert_eq!(
        std::fs::read(path.join(checkpoint::WEIGHTS)).unwrap(),
        before
    );
    assert_eq!(
        std::fs::read_to_string(path.join(checkpoint::TOKENIZER)).unwrap(),
        "old"
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["ckpt"]);
    // No directory appears where there was none.
    assert!(checkpoint::save(&m, &dir.path().join("fresh"), None).is_err());
    assert!(!dir.path().join("fresh").exists());
}

/// A small tokenizer in the Hugging Face format: 5 ids, two of them
/// special.
const TOK: &str = r#"{"version":"1.0","truncation":null,
"added_tokens":[{"id":0,"content":"<pad>","special":true},{"id":1,"content":"<s>","special":true}],
"model":{"type":"WordLevel","vocab":{"<pad>":0,"<s>":1,"a":2,"b":3,"c":4},"unk_token":"<pad>"}}"#;

fn load_checked_err(path: &std::path::Path, expected: &str) -> String {
    checkpoint::load_checked::<B>(path, &Default::default(), expected)
        .unwrap_err()
        .to_string()
}

#[test]
fn load_checked_compares_the_saved_tokenizer() {
    let m = model();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt");
    let tpath = path.join(checkpoint::TOKENIZER);
    checkpoint::save(&m, &path, Some(TOK)).unwrap();
    let back: Llama<B> = checkpoint::load_checked(&path, &Default::default(), TOK).unwrap();
    assert_eq!(hf_tensors(&back), hf_tensors(&m));
    // Layout and other fields are not compared; the vocabulary is.
    let other = TOK.replace("\n", " ").replace("WordLevel", "Other");
    checkpoint::load_checked::<B>(&path, &Default::default(), &other).unwrap();

    let renamed = TOK.replace(r#""b":3"#, r#""B":3"#);
    std::fs::write(&tpath, &renamed).unwrap();
    let e = load_checked_err(&path, TOK);
    assert!(e.contains("tokenizer.json"), "{e}");
    assert!(
        e.contains(r#"model.vocab differs from the expected tokenizer at token "B" (id 3), where "b" (id 3) is expected"#),
        "{e}"
    );
    let moved = TOK.replace(r#""c":4"#, r#""c":5"#);
    std::fs::write(&tpath, &moved).unwrap();
    let e = load_checked_err(&path, TOK);
    assert!(
        e.contains(r#"at token "c" (id 5), where "c" (id 4)"#),
        "{e}"
    );
    let fewer = TOK.replace(r#","c":4"#, "");
    std::fs::write(&tpath, &fewer).unwrap();
    let e = load_checked_err(&path, TOK);
    assert!(e.contains(r#"model.vocab lacks token "c" (id 4)"#), "{e}");
    let added = TOK.replace(r#""content":"<s>""#, r#""content":"<bos>""#);
    std::fs::write(&tpath, &added).unwrap();
    let e = load_checked_err(&path, TOK);
    assert!(
        e.contains(r#"added_tokens differs from the expected tokenizer at token "<bos>" (id 1)"#),
        "{e}"
    );

    std::fs::write(&tpath, "not json").unwrap();
    let e = load_checked_err(&path, TOK);
    assert!(e.contains(&tpath.display().to_string()), "{e}");
    std::fs::write(&tpath, "[1, 2]").unwrap();
    let e = load_checked_err(&path, TOK);
    assert!(e.contains("tokenizer.json: no model.vocab"), "{e}");
    std::fs::remove_file(&tpath).unwrap();
    let e = load_checked_err(&path, TOK);
    assert!(e.contains(&tpath.display().to_string()), "{e}");
    // A bad expected tokenizer is the caller's error, not a panic.
    std::fs::write(&tpath, TOK).unwrap();
    assert!(load_checked_err(&path, "{").contains("expected tokenizer"));
}

#[test]
fn the_model_vocabulary_must_cover_the_tokenizer() {
    let m = model(); // vocab_size 50
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt");
    // Ids 0..=49: 50 ids, as many as the embedding's rows.
    let fits = TOK.replace(r#""c":4"#, r#""c":49"#);
    checkpoint::save(&m, &path, Some(&fits)).unwrap();
    checkpoint::load_checked::<B>(&path, &Default::default(), &fits).unwrap();
    // Id 50: 51 ids, one more than the model has.
    let over = TOK.replace(r#""c":4"#, r#""c":50"#);
    checkpoint::save(&m, &path, Some(&over)).unwrap();
    let e = load_checked_err(&path, &over);
    assert!(
        e.contains("config.json: vocab_size 50 is below the 51 ids"),
        "{e}"
    );
    // An added token counts too.
    let over = TOK.replace(r#""id":1,"content":"<s>""#, r#""id":60,"content":"<s>""#);
    checkpoint::save(&m, &path, Some(&over)).unwrap();
    let e = load_checked_err(&path, &over);
    assert!(e.contains("vocab_size 50 is below the 61 ids"), "{e}");
}

/// A kill between the two renames of a directory switch leaves `d.old`
/// (and the staged `d.tmp`, complete by then) but no `d`: the staged one
/// takes its place, or the old one when there is none.
#[test]
fn an_interrupted_directory_switch_is_finished() {
    let root = tempfile::tempdir().unwrap();
    let d = root.path().join("d");
    let (tmp, old) = (root.path().join("d.tmp"), root.path().join("d.old"));
    for (dir, text) in [(&tmp, "new"), (&old, "old")] {
        std::fs::create_dir(dir).unwrap();
        std::fs::write(dir.join("f"), text).unwrap();
    }
    checkpoint::recover_dir(&d).unwrap();
    assert_eq!(std::fs::read_to_string(d.join("f")).unwrap(), "new");
    assert!(!old.exists() && !tmp.exists());
    // Without a staged directory the old one comes back.
    std::fs::rename(&d, &old).unwrap();
    checkpoint::recover_dir(&d).unwrap();
    assert_eq!(std::fs::read_to_string(d.join("f")).unwrap(), "new");
    assert!(!old.exists());
    // With `d` in place nothing moves.
    std::fs::create_dir(&old).unwrap();
    checkpoint::recover_dir(&d).unwrap();
    assert!(old.exists() && d.exists());
}
