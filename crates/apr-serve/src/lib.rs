//! Generation calls on serving engines over HTTP, at the granularity the
//! APR orchestrator needs: one call is a prompt of token ids, stop strings
//! and ids, a token limit, sampling parameters and a seed; its response is
//! the generated ids, their log-probabilities and why generation ended.
//!
//! - [`call`]: the request and response of one call.
//! - [`protocol`]: how each engine spells them: vLLM's OpenAI-compatible
//!   `/v1/completions` with token-id prompts ([`protocol::Vllm`]) and
//!   SGLang's native `/generate` ([`protocol::Sglang`]).
//! - [`http`]: posting JSON with a timeout, retrying transient failures
//!   with backoff.
//! - [`pool`]: many calls in flight over one or several servers, with
//!   bounded concurrency ([`pool::ServerPool`]).
//!
//! No tensors and no tokenizer here: the caller owns both, and checks the
//! vocabulary through [`call::CallRequest::vocab`].

pub mod call;
pub mod error;
pub mod http;
pub mod loopback;
pub mod pool;
pub mod protocol;

pub use call::{CallRequest, CallResponse, Finish, Sampling};
pub use error::{Error, Result};
pub use pool::ServerPool;
pub use protocol::{Protocol, Sglang, Vllm};
