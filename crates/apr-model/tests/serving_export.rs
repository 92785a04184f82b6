//! The untied export for serving engines: the same function as the tied
//! model, with its head as a weight of its own.

use apr_model::checkpoint::{self, hf_tensors};
use apr_model::{Cpu, Llama, ModelConfig};
use burn::tensor::{Tensor, TensorData};

#[test]
fn a_tied_model_saved_untied_computes_the_same_logits() {
    let mut c = ModelConfig::preset("tiny").unwrap();
    c.num_layers = 2;
    c.tie_embeddings = true;
    let dev = Default::default();
    let m = Llama::<Cpu>::init(&c, 8, &dev);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("served");
    checkpoint::save_untied(&m, &path, Some("{}")).unwrap();
    let back: Llama<Cpu> = checkpoint::load(&path, &dev).unwrap();
    assert!(!back.config.tie_embeddings && back.lm_head.is_some());
    let (ours, theirs) = (hf_tensors(&m), hf_tensors(&back));
    assert!(!ours.contains_key("lm_head.weight"));
    assert_eq!(theirs["lm_head.weight"], ours["model.embed_tokens.weight"]);
    assert_eq!(theirs.len(), ours.len() + 1);
    let ids: Vec<i64> = (0..12).map(|i| (i * 37 % 1200) as i64).collect();
    let t = || Tensor::from_data(TensorData::new(ids.clone(), [1, 12]), &dev);
    let a = m.forward(t(), None).into_data().to_vec::<f32>().unwrap();
    let b = back.forward(t(), None).into_data().to_vec::<f32>().unwrap();
    assert_eq!(a, b);
    // An untied model is saved as it is.
    c.tie_embeddings = false;
    let u = Llama::<Cpu>::init(&c, 8, &dev);
    checkpoint::save_untied(&u, &path, None).unwrap();
    let back: Llama<Cpu> = checkpoint::load(&path, &dev).unwrap();
    assert_eq!(hf_tensors(&back), hf_tensors(&u));
}
