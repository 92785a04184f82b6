//! How each serving engine spells a call: the endpoint, the request body,
//! and how to read the generated ids, log-probabilities and finish reason
//! back.

use crate::call::{CallRequest, CallResponse, Finish};
use crate::error::{Error, Result};
use crate::http::HttpClient;
use serde_json::{json, Value};

/// One engine's generation endpoint.
pub trait Protocol: Send + Sync + 'static {
    /// The engine's name, for messages.
    fn name(&self) -> &'static str;
    /// The generation endpoint's path (`/v1/completions`, `/generate`).
    fn path(&self) -> &'static str;
    /// The request body of `req`.
    fn body(&self, req: &CallRequest) -> Value;
    /// Reads a response to `req` from `url`; ids at or above `req.vocab`
    /// are an [`Error::Vocabulary`].
    fn parse(&self, url: &str, req: &CallRequest, v: &Value) -> Result<CallResponse>;
    /// Loads the Hugging Face checkpoint in `dir` (a path the server can
    /// read) into the running server at `base`, and drops the prefixes it
    /// cached under the old weights. Call it with no generation in flight.
    fn reload_weights(&self, client: &HttpClient, base: &str, dir: &str) -> Result<()>;
    /// Checks, where the engine can tell, that the server at `base`
    /// tokenizes `probe` as `want` (the caller's tokenizer, no special
    /// tokens added): a model served with another vocabulary is an
    /// [`Error::Vocabulary`] before any call runs. Engines without a
    /// tokenize endpoint rely on the id check of every response.
    fn check_vocabulary(
        &self,
        client: &HttpClient,
        base: &str,
        probe: &str,
        want: &[u32],
    ) -> Result<()>;
}

/// `base` (without a trailing slash) joined with `path`.
fn endpoint(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

/// vLLM's OpenAI-compatible completions with a token-id prompt: token ids
/// come back as `token_id:N` strings (`return_tokens_as_token_ids`), with
/// the sampled token's log-probability (`logprobs: 0`).
#[derive(Debug, Clone)]
pub struct Vllm {
    /// The served model's name (`--served-model-name`, else its path).
    pub model: String,
}

/// SGLang's native `/generate` with `input_ids` and `return_logprob`.
#[derive(Debug, Clone, Default)]
pub struct Sglang;

/// `top_k` as both engines spell "all": -1.
fn top_k(k: usize) -> i64 {
    if k == 0 {
        -1
    } else {
        k as i64
    }
}

/// A seed as both engines take it: a signed 64-bit integer (vLLM refuses
/// larger values with a 400), so the top bit is dropped.
fn seed(s: u64) -> i64 {
    (s & i64::MAX as u64) as i64
}

fn malformed(url: &str, reason: impl Into<String>) -> Error {
    Error::Malformed {
        url: url.into(),
        reason: reason.into(),
    }
}

/// Checks that `ids` and `logprobs` pair up and that every id is in the
/// caller's vocabulary.
fn check_ids(url: &str, req: &CallRequest, ids: &[u32], logprobs: &[f32]) -> Result<()> {
    if ids.len() != logprobs.len() {
        return Err(malformed(
            url,
            format!(
                "{} token ids but {} log-probabilities",
                ids.len(),
                logprobs.len()
            ),
        ));
    }
    if let Some(&bad) = ids.iter().find(|&&id| id as usize >= req.vocab) {
        return Err(Error::Vocabulary {
            url: url.into(),
            reason: format!("token id {bad} is outside the vocabulary of {}", req.vocab),
        });
    }
    Ok(())
}

/// A JSON number as a log-probability (`null` reads as negative
/// infinity; vLLM writes `-inf` as -9999).
fn logprob(v: &Value) -> Option<f32> {
    match v {
        Value::Null => Some(f32::NEG_INFINITY),
        v => v.as_f64().map(|x| x as f32),
    }
}

/// What matched when an engine says a call stopped: a stop string, a
/// stop token id, or nothing reported (the end-of-sequence token, kept as
/// the last id).
fn stop_finish(url: &str, matched: Option<&Value>, ids: &[u32]) -> Result<Finish> {
    match matched {
        Some(Value::String(s)) => Ok(Finish::StopString(s.clone())),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Finish::StopToken)
            .ok_or_else(|| malformed(url, format!("stop token {n}"))),
        _ => ids
            .last()
            .map(|&id| Finish::StopToken(id))
            .ok_or_else(|| malformed(url, "stopped with no token")),
    }
}

/// An error unless a control endpoint's answer says `"success": true`.
fn require_success(url: &str, got: &Value, what: &str) -> Result<()> {
    if got.get("success").and_then(Value::as_bool) == Some(true) {
        return Ok(());
    }
    Err(malformed(url, format!("{what}: {got}")))
}

impl Protocol for Vllm {
    fn name(&self) -> &'static str {
        "vllm"
    }

    fn path(&self) -> &'static str {
        "/v1/completions"
    }

    fn body(&self, req: &CallRequest) -> Value {
        json!({
            "model": self.model,
            "prompt": req.prompt,
            "max_tokens": req.max_new_tokens,
            "temperature": req.sampling.temperature,
            "top_p": req.sampling.top_p,
            "top_k": top_k(req.sampling.top_k),
            "seed": seed(req.seed),
            "stop": req.stop,
            "stop_token_ids": req.stop_ids,
            "include_stop_str_in_output": true,
            "skip_special_tokens": false,
            "spaces_between_special_tokens": false,
            "logprobs": 0,
            "return_tokens_as_token_ids": true,
        })
    }

    fn parse(&self, url: &str, req: &CallRequest, v: &Value) -> Result<CallResponse> {
        let choice = v
            .get("choices")
            .and_then(|c| c.get(0))
            .ok_or_else(|| malformed(url, "no choices[0]"))?;
        let lp = choice
            .get("logprobs")
            .filter(|l| !l.is_null())
            .ok_or_else(|| {
                malformed(
                    url,
                    "no logprobs (is return_tokens_as_token_ids supported?)",
                )
            })?;
        let tokens = lp
            .get("tokens")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed(url, "no logprobs.tokens"))?;
        let ids = tokens
            .iter()
            .map(|t| {
                t.as_str()
                    .and_then(|s| s.strip_prefix("token_id:"))
                    .and_then(|n| n.parse::<u32>().ok())
                    .ok_or_else(|| malformed(url, format!("token {t} is not \"token_id:N\"")))
            })
            .collect::<Result<Vec<u32>>>()?;
        let logprobs = lp
            .get("token_logprobs")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed(url, "no logprobs.token_logprobs"))?
            .iter()
            .map(|x| logprob(x).ok_or_else(|| malformed(url, format!("log-probability {x}"))))
            .collect::<Result<Vec<f32>>>()?;
        check_ids(url, req, &ids, &logprobs)?;
        let finish = match choice.get("finish_reason").and_then(Value::as_str) {
            Some("length") => Finish::Length,
            // `stop_reason`: the matched string, the matched stop token
            // id, or null for the end-of-sequence token (kept in `ids`).
            Some("stop") => stop_finish(url, choice.get("stop_reason"), &ids)?,
            other => return Err(malformed(url, format!("finish_reason {other:?}"))),
        };
        let cached = v
            .get("usage")
            .and_then(|u| u.get("prompt_tokens_details"))
            .and_then(|d| d.get("cached_tokens"))
            .and_then(Value::as_u64)
            .map(|n| n as usize);
        Ok(CallResponse {
            ids,
            logprobs,
            finish,
            cached_prompt_tokens: cached,
        })
    }

    fn reload_weights(&self, client: &HttpClient, base: &str, dir: &str) -> Result<()> {
        self.reload(client, base, dir)
    }

    /// `POST /tokenize` with the probe, compared with `want`.
    fn check_vocabulary(
        &self,
        client: &HttpClient,
        base: &str,
        probe: &str,
        want: &[u32],
    ) -> Result<()> {
        let url = endpoint(base, "/tokenize");
        let body = json!({"model": self.model, "prompt": probe, "add_special_tokens": false});
        let got = client.post_json(&url, &body)?;
        let ids: Option<Vec<u32>> = got.get("tokens").and_then(Value::as_array).and_then(|a| {
            a.iter()
                .map(|x| x.as_u64().and_then(|x| u32::try_from(x).ok()))
                .collect()
        });
        let ids = ids.ok_or_else(|| malformed(&url, format!("no tokens in {got}")))?;
        if ids != want {
            let at = ids.iter().zip(want).take_while(|(a, b)| a == b).count();
            return Err(Error::Vocabulary {
                url,
                reason: format!(
                    "the server tokenizes the probe into {} ids, ours into {}; first difference at {at}",
                    ids.len(),
                    want.len()
                ),
            });
        }
        Ok(())
    }
}

impl Vllm {
    /// Server started with `VLLM_SERVER_DEV_MODE=1` (else these routes are
    /// absent: 404): `POST /collective_rpc` runs the workers'
    /// `reload_weights(weights_path=dir)`, then `POST /reset_prefix_cache`
    /// drops the cached blocks of the old weights.
    fn reload(&self, client: &HttpClient, base: &str, dir: &str) -> Result<()> {
        let rpc = endpoint(base, "/collective_rpc");
        let body = json!({"method": "reload_weights", "kwargs": {"weights_path": dir}});
        client.post_json(&rpc, &body)?;
        let reset = endpoint(base, "/reset_prefix_cache");
        let got = client.post_json(&reset, &json!({}))?;
        require_success(&reset, &got, "the prefix cache was not reset")
    }
}

impl Protocol for Sglang {
    fn name(&self) -> &'static str {
        "sglang"
    }

    fn path(&self) -> &'static str {
        "/generate"
    }

    fn body(&self, req: &CallRequest) -> Value {
        json!({
            "input_ids": req.prompt,
            "sampling_params": {
                "max_new_tokens": req.max_new_tokens,
                "temperature": req.sampling.temperature,
                "top_p": req.sampling.top_p,
                "top_k": top_k(req.sampling.top_k),
                "stop": req.stop,
                "stop_token_ids": req.stop_ids,
                "no_stop_trim": true,
                "skip_special_tokens": false,
                "sampling_seed": seed(req.seed),
            },
            "return_logprob": true,
        })
    }

    fn parse(&self, url: &str, req: &CallRequest, v: &Value) -> Result<CallResponse> {
        let meta = v
            .get("meta_info")
            .ok_or_else(|| malformed(url, "no meta_info"))?;
        let pairs = meta
            .get("output_token_logprobs")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed(url, "no meta_info.output_token_logprobs"))?;
        let mut ids = Vec::with_capacity(pairs.len());
        let mut logprobs = Vec::with_capacity(pairs.len());
        for p in pairs {
            let (lp, id) = (p.get(0).and_then(logprob), p.get(1).and_then(Value::as_u64));
            let (Some(lp), Some(id)) = (lp, id.and_then(|i| u32::try_from(i).ok())) else {
                return Err(malformed(url, format!("output_token_logprobs entry {p}")));
            };
            ids.push(id);
            logprobs.push(lp);
        }
        check_ids(url, req, &ids, &logprobs)?;
        let reason = meta
            .get("finish_reason")
            .ok_or_else(|| malformed(url, "no meta_info.finish_reason"))?;
        let finish = match (
            reason.get("type").and_then(Value::as_str),
            reason.get("matched"),
        ) {
            (Some("length"), _) => Finish::Length,
            (Some("stop"), matched) => stop_finish(url, matched, &ids)?,
            _ => return Err(malformed(url, format!("finish_reason {reason}"))),
        };
        let cached = meta
            .get("cached_tokens")
            .and_then(Value::as_u64)
            .map(|n| n as usize);
        Ok(CallResponse {
            ids,
            logprobs,
            finish,
            cached_prompt_tokens: cached,
        })
    }

    /// `POST /update_weights_from_disk` with the new `model_path` (SGLang
    /// flushes its cache itself); `{"success": false}` is an error.
    fn reload_weights(&self, client: &HttpClient, base: &str, dir: &str) -> Result<()> {
        let url = endpoint(base, "/update_weights_from_disk");
        let got = client.post_json(&url, &json!({"model_path": dir, "flush_cache": true}))?;
        require_success(&url, &got, "weights not updated")
    }

    /// SGLang 0.5 has no tokenize endpoint this crate relies on: nothing
    /// to check before the calls (each response's ids are still checked).
    fn check_vocabulary(&self, _: &HttpClient, _: &str, _: &str, _: &[u32]) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::Sampling;

    /// vLLM answers a seed above `i64::MAX` with a 400; our thread seeds
    /// use all 64 bits.
    #[test]
    fn seeds_are_sent_as_signed_64_bit_integers() {
        let mut req = CallRequest {
            prompt: vec![1, 2],
            stop: Vec::new(),
            stop_ids: vec![2],
            max_new_tokens: 4,
            sampling: Sampling::GREEDY,
            seed: u64::MAX,
            vocab: 10,
        };
        let v = Vllm { model: "m".into() }.body(&req);
        assert_eq!(v["seed"], json!(i64::MAX));
        assert_eq!(
            Sglang.body(&req)["sampling_params"]["sampling_seed"],
            json!(i64::MAX)
        );
        req.seed = (1 << 63) | 7;
        assert_eq!(Vllm { model: "m".into() }.body(&req)["seed"], json!(7));
    }
}
