//! Model configuration and the `tiny`, `small` and `paper` presets.

use crate::error::{Error, Result};
use apr_kernels::LlamaArch;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The shape of a Llama-style decoder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Preset or free-form name.
    pub name: String,
    /// Vocabulary size (the tokenizer's).
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the SwiGLU MLP.
    pub intermediate_size: usize,
    /// Number of decoder blocks.
    pub num_layers: usize,
    /// Number of query heads.
    pub num_heads: usize,
    /// Number of key/value heads (grouped-query attention when below `num_heads`).
    pub num_kv_heads: usize,
    /// Context window in tokens.
    pub max_seq_len: usize,
    /// Base of the rotary position embedding.
    pub rope_theta: f64,
    /// Epsilon of RMSNorm.
    pub rms_norm_eps: f64,
    /// Whether the output projection shares the token embedding.
    pub tie_embeddings: bool,
}

const TINY: &str = include_str!("../presets/tiny.toml");
const SMALL: &str = include_str!("../presets/small.toml");
const PAPER: &str = include_str!("../presets/paper.toml");

impl ModelConfig {
    /// A named preset: `tiny`, `small` or `paper`.
    pub fn preset(name: &str) -> Result<Self> {
        let text = match name {
            "tiny" => TINY,
            "small" => SMALL,
            "paper" => PAPER,
            other => return Err(Error::UnknownPreset(other.into())),
        };
        let c: ModelConfig = toml::from_str(text).map_err(|e| Error::Toml {
            path: format!("<preset {name}>").into(),
            source: e,
        })?;
        c.validate()?;
        Ok(c)
    }

    /// Reads a config from a TOML file.
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let c: ModelConfig = toml::from_str(&text).map_err(|e| Error::Toml {
            path: path.into(),
            source: e,
        })?;
        c.validate()?;
        Ok(c)
    }

    /// Checks that the numbers describe a model.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Config(m.into()));
        if self.vocab_size == 0 || self.hidden_size == 0 || self.num_layers == 0 {
            return bad("vocab_size, hidden_size and num_layers must be positive");
        }
        if self.num_heads == 0 || !self.hidden_size.is_multiple_of(self.num_heads) {
            return bad("hidden_size must be a positive multiple of num_heads");
        }
        if !self.head_dim().is_multiple_of(2) {
            return bad("the head dimension must be even (rotary embedding)");
        }
        if self.num_kv_heads == 0 || !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return bad("num_heads must be a multiple of num_kv_heads");
        }
        if self.intermediate_size == 0 || self.max_seq_len == 0 {
            return bad("intermediate_size and max_seq_len must be positive");
        }
        if self.rope_theta.is_nan()
            || self.rope_theta <= 1.0
            || self.rms_norm_eps.is_nan()
            || self.rms_norm_eps <= 0.0
        {
            return bad("rope_theta must be above 1 and rms_norm_eps positive");
        }
        Ok(())
    }

    /// Dimension of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }

    /// The architecture both executors are built from: the burn model's
    /// forward and the host decoder ([`apr_kernels::decoder`]).
    pub fn arch(&self) -> LlamaArch {
        LlamaArch {
            vocab: self.vocab_size,
            hidden: self.hidden_size,
            intermediate: self.intermediate_size,
            layers: self.num_layers,
            heads: self.num_heads,
            kv_heads: self.num_kv_heads,
            max_seq_len: self.max_seq_len,
            rope_theta: self.rope_theta,
            rms_norm_eps: self.rms_norm_eps,
            tied: self.tie_embeddings,
        }
    }

    /// Parameters outside the embedding and the output projection.
    pub fn non_embedding_params(&self) -> usize {
        let h = self.hidden_size;
        let kv = self.num_kv_heads * self.head_dim();
        let attn = 2 * h * h + 2 * h * kv;
        let mlp = 3 * h * self.intermediate_size;
        self.num_layers * (attn + mlp + 2 * h) + h
    }

    /// All parameters (the embedding counted once when tied).
    pub fn total_params(&self) -> usize {
        let emb = self.vocab_size * self.hidden_size;
        self.non_embedding_params() + if self.tie_embeddings { emb } else { 2 * emb }
    }

    /// The Hugging Face `config.json` of a `LlamaForCausalLM` with this shape.
    pub fn hf_config_json(&self, bos: u32, eos: u32, pad: u32) -> serde_json::Value {
        serde_json::json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim(),
            "max_position_embeddings": self.max_seq_len,
            "rope_theta": self.rope_theta,
            "rms_norm_eps": self.rms_norm_eps,
            "tie_word_embeddings": self.tie_embeddings,
            "hidden_act": "silu",
            "attention_bias": false,
            "mlp_bias": false,
            "bos_token_id": bos,
            "eos_token_id": eos,
            "pad_token_id": pad,
            "torch_dtype": "float32",
            "apr_preset": self.name,
        })
    }

    /// Reads back a config written by [`ModelConfig::hf_config_json`] (or
    /// any Llama `config.json` without rope scaling).
    pub fn from_hf_config_json(v: &serde_json::Value, path: &Path) -> Result<Self> {
        let num = |k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_u64)
                .map(|x| x as usize)
                .ok_or_else(|| Error::checkpoint(path, format!("config.json lacks {k}")))
        };
        let float = |k: &str, d: f64| v.get(k).and_then(serde_json::Value::as_f64).unwrap_or(d);
        let heads = num("num_attention_heads")?;
        let c = ModelConfig {
            name: v
                .get("apr_preset")
                .and_then(|x| x.as_str())
                .unwrap_or("custom")
                .to_string(),
            vocab_size: num("vocab_size")?,
            hidden_size: num("hidden_size")?,
            intermediate_size: num("intermediate_size")?,
            num_layers: num("num_hidden_layers")?,
            num_heads: heads,
            num_kv_heads: num("num_key_value_heads").unwrap_or(heads),
            max_seq_len: num("max_position_embeddings")?,
            rope_theta: float("rope_theta", 10000.0),
            rms_norm_eps: float("rms_norm_eps", 1e-6),
            tie_embeddings: v
                .get("tie_word_embeddings")
                .and_then(|x| x.as_bool())
                .unwrap_or(false),
        };
        c.validate()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_parameter_counts() {
        // Hand-computed: per layer 4*h*h (attention, no GQA) + 3*h*i (MLP)
        // + 2*h (norms); plus the final norm; plus the embedding(s).
        let tiny = ModelConfig::preset("tiny").unwrap();
        assert_eq!(
            tiny.non_embedding_params(),
            4 * (65_536 + 135_168 + 256) + 128
        );
        assert_eq!(tiny.total_params(), 803_968 + 1233 * 128);
        let small = ModelConfig::preset("small").unwrap();
        assert_eq!(
            small.non_embedding_params(),
            8 * (1_048_576 + 2_113_536 + 1024) + 512
        );
        assert_eq!(small.total_params(), 25_305_600 + 1233 * 512); // 25.9M
        let paper = ModelConfig::preset("paper").unwrap();
        assert_eq!(
            paper.non_embedding_params(),
            18 * (4_194_304 + 8_454_144 + 2048) + 1024
        ); // 227.7M, the paper's "228M non-embedding"
        assert_eq!(paper.max_seq_len, 4096);
        assert!(matches!(
            ModelConfig::preset("huge"),
            Err(Error::UnknownPreset(_))
        ));
    }

    #[test]
    fn grouped_heads_shrink_kv_projections() {
        let mut c = ModelConfig::preset("tiny").unwrap();
        c.num_kv_heads = 2;
        c.validate().unwrap();
        // k and v lose half their width: 2 * 128 * 64 fewer per layer... twice.
        assert_eq!(c.non_embedding_params(), 803_968 - 4 * 2 * 128 * 64);
        c.num_kv_heads = 3;
        assert!(c.validate().is_err());
    }

    #[test]
    fn hf_config_round_trip() {
        let c = ModelConfig::preset("small").unwrap();
        let j = c.hf_config_json(1, 2, 0);
        assert_eq!(j["num_hidden_layers"], 8);
        let back = ModelConfig::from_hf_config_json(&j, Path::new("x")).unwrap();
        assert_eq!(back, c);
    }
}
