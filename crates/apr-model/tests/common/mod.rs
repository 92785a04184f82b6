//! Helpers the model's integration tests share: a small model with grouped
//! heads, token tensors, host values and differences.
#![allow(dead_code)]

use apr_model::{Cpu, Llama, ModelConfig};
use burn::tensor::{Int, Tensor, TensorData};

pub type B = Cpu;

/// A small model with grouped heads, so every path is exercised.
pub fn config() -> ModelConfig {
    ModelConfig {
        name: "test".into(),
        vocab_size: 50,
        hidden_size: 32,
        intermediate_size: 48,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: 2,
        max_seq_len: 64,
        rope_theta: 10000.0,
        rms_norm_eps: 1e-5,
        tie_embeddings: false,
    }
}

pub fn model() -> Llama<B> {
    Llama::init(&config(), 11, &Default::default())
}

pub fn tokens(rows: &[Vec<u32>]) -> Tensor<B, 2, Int> {
    let t = rows[0].len();
    let flat: Vec<i64> = rows.iter().flatten().map(|&x| x as i64).collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), t]), &Default::default())
}

pub fn host<const D: usize>(x: Tensor<B, D>) -> Vec<f32> {
    x.into_data().to_vec::<f32>().unwrap()
}

pub fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Tolerance for f32 paths that sum in different orders.
pub const TOL: f32 = 1e-4;

pub fn seq(n: usize, salt: u32) -> Vec<u32> {
    (0..n as u32)
        .map(|i| (i * 7 + salt * 13 + 3) % 50)
        .collect()
}
