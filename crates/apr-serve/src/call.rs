//! One generation call: what the orchestrator asks of a backend, and what
//! comes back.

use serde::{Deserialize, Serialize};

/// How tokens are drawn. Greedy is temperature 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// Softmax temperature; 0 picks the most likely token.
    pub temperature: f32,
    /// Keep the `top_k` most likely tokens; 0 keeps all.
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches `top_p`;
    /// 1 keeps all.
    pub top_p: f32,
}

impl Sampling {
    /// Greedy decoding.
    pub const GREEDY: Sampling = Sampling {
        temperature: 0.0,
        top_k: 0,
        top_p: 1.0,
    };
}

/// One call: continue `prompt` until a stop, the end token or the limit.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRequest {
    /// The prompt's token ids.
    pub prompt: Vec<u32>,
    /// Strings that end the call; the stop string stays in the output.
    pub stop: Vec<String>,
    /// Token ids that end the call (the end-of-sequence token among them);
    /// the stopping token stays in the output.
    pub stop_ids: Vec<u32>,
    /// The most tokens to generate.
    pub max_new_tokens: usize,
    /// How to draw tokens.
    pub sampling: Sampling,
    /// The call's seed (engines that honour per-request seeds make a
    /// sampled call repeatable).
    pub seed: u64,
    /// The caller's vocabulary size: a response holding an id at or above
    /// it is an [`crate::Error::Vocabulary`].
    pub vocab: usize,
}

/// Why generation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Finish {
    /// A stop string matched (the string).
    StopString(String),
    /// A stop token id was generated (the id).
    StopToken(u32),
    /// The token limit was reached.
    Length,
}

/// What a call produced.
#[derive(Debug, Clone, PartialEq)]
pub struct CallResponse {
    /// The generated token ids, the stopping token or string included.
    pub ids: Vec<u32>,
    /// The log-probability of each generated id under the server's
    /// sampling distribution.
    pub logprobs: Vec<f32>,
    /// Why generation ended.
    pub finish: Finish,
    /// Prompt tokens the server found in its prefix cache, where it says.
    pub cached_prompt_tokens: Option<usize>,
}
