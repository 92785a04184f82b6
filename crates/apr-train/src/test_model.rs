//! A one-layer, width-16 Llama for unit tests of the losses.

use apr_model::{AprBackend, Llama, ModelConfig};

/// The `tiny` preset cut to one layer of width 16, 16 positions, weights
/// drawn with seed 3.
pub(crate) fn micro_llama<B: AprBackend>() -> Llama<B> {
    let mut c = ModelConfig::preset("tiny").unwrap();
    c.hidden_size = 16;
    c.intermediate_size = 32;
    c.num_layers = 1;
    c.num_heads = 2;
    c.num_kv_heads = 1;
    c.max_seq_len = 16;
    Llama::init(&c, 3, &Default::default())
}
