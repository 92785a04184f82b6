//! The orchestrator on the server backend: whole thread trees through a
//! scripted vLLM or SGLang server on a loopback socket give the results
//! the native backend gives on the same scripted model; a server that is
//! down fails the run with a clear error. No network, no Python.

use apr_rollout::backend::server::Server;
use apr_rollout::mock::ScriptedModel;
use apr_rollout::{Engine, Error, FinishReason, Limits, ProblemResult, StepModel};
use apr_serve::http::{HttpClient, Retry};
use apr_serve::loopback::read_request;
use apr_serve::{ServerPool, Sglang, Vllm};
use apr_trace::tokenizer::EOS_ID;
use apr_trace::TraceTokenizer;
use serde_json::{json, Value};
use std::io::Write;
use std::net::TcpListener;
use std::time::Duration;

mod common;

use common::{apr_cfg, problems, scripted, solver_dicts};

#[derive(Clone, Copy, PartialEq)]
enum Flavour {
    Vllm,
    Sglang,
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_u64())
                .map(|x| x as u32)
                .collect()
        })
        .unwrap_or_default()
}

/// Greedy generation on a fresh copy of `model` as a server does it: stop
/// on a stop id (kept), a stop string (kept) or the token limit. The
/// generated ids and why generation stopped: a matched string, a matched
/// id, or the limit.
fn generate(model: &ScriptedModel, body: &Value, prompt: &[u32]) -> (Vec<u32>, Value) {
    let tok = TraceTokenizer::new();
    let mut m = model.clone();
    let max = body["max_tokens"]
        .as_u64()
        .or(body["sampling_params"]["max_new_tokens"].as_u64())
        .unwrap_or(16) as usize;
    let params = if body["sampling_params"].is_null() {
        body
    } else {
        &body["sampling_params"]
    };
    let stop: Vec<String> = params["stop"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let stop_ids = ids(&params["stop_token_ids"]);
    let mut feed = prompt.to_vec();
    let mut out = Vec::new();
    loop {
        let logits = m.step(&[(0, &feed[..])]).unwrap().remove(0);
        let next = (0..logits.len())
            .max_by(|&a, &b| logits[a].total_cmp(&logits[b]).then(b.cmp(&a)))
            .unwrap() as u32;
        out.push(next);
        let text = tok.decode(&out);
        if next == EOS_ID || stop_ids.contains(&next) {
            return (out, json!(next));
        }
        if let Some(s) = stop.iter().find(|s| text.ends_with(s.as_str())) {
            return (out, json!(s));
        }
        if out.len() >= max {
            return (out, Value::Null);
        }
        feed = vec![next];
    }
}

/// The body of a server's answer to `path`.
fn answer(flavour: Flavour, model: &ScriptedModel, path: &str, body: &Value) -> Value {
    let tok = TraceTokenizer::new();
    match (flavour, path) {
        (_, "/v1/models") => json!({"data": [{"id": "scripted"}]}),
        (_, "/tokenize") => {
            json!({"tokens": tok.encode(body["prompt"].as_str().unwrap_or(""))})
        }
        (Flavour::Vllm, "/v1/completions") => {
            let prompt = ids(&body["prompt"]);
            let (out, matched) = generate(model, body, &prompt);
            let tokens: Vec<String> = out.iter().map(|i| format!("token_id:{i}")).collect();
            let reason = if matched.is_null() { "length" } else { "stop" };
            // A stop string or id is reported; the end token is not.
            let stop_reason = if matched == json!(EOS_ID) {
                Value::Null
            } else {
                matched
            };
            json!({"choices": [{"index": 0, "text": tok.decode(&out),
                "logprobs": {"token_logprobs": vec![-0.5; out.len()], "tokens": tokens},
                "finish_reason": reason, "stop_reason": stop_reason}],
                "usage": {"prompt_tokens": prompt.len(), "completion_tokens": out.len(),
                          "prompt_tokens_details": {"cached_tokens": prompt.len() / 2}}})
        }
        (Flavour::Sglang, "/generate") => {
            let prompt = ids(&body["input_ids"]);
            let (out, matched) = generate(model, body, &prompt);
            let pairs: Vec<Value> = out.iter().map(|&i| json!([-0.5, i, null])).collect();
            let finish = if matched.is_null() {
                json!({"type": "length", "length": out.len()})
            } else {
                json!({"type": "stop", "matched": matched})
            };
            json!({"text": tok.decode(&out), "output_ids": out,
                "meta_info": {"finish_reason": finish, "prompt_tokens": prompt.len(),
                    "cached_tokens": 0, "output_token_logprobs": pairs}})
        }
        _ => json!({"error": "no route"}),
    }
}

/// A server on 127.0.0.1 generating with `model`; its base URL.
fn serve(flavour: Flavour, model: ScriptedModel) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let model = model.clone();
            std::thread::spawn(move || {
                let Some((path, body)) = read_request(&mut stream) else {
                    return;
                };
                let reply = answer(flavour, &model, &path, &body).to_string();
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    reply.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(reply.as_bytes());
            });
        }
    });
    url
}

fn client() -> HttpClient {
    let retry = Retry {
        attempts: 2,
        first_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
    };
    HttpClient::new(Duration::from_secs(30), retry)
}

fn pool(flavour: Flavour, url: &str, concurrency: usize) -> ServerPool {
    let urls = [url.to_string()];
    match flavour {
        Flavour::Vllm => ServerPool::new(
            Vllm {
                model: "scripted".into(),
            },
            &urls,
            concurrency,
            client(),
        ),
        Flavour::Sglang => ServerPool::new(Sglang, &urls, concurrency, client()),
    }
    .unwrap()
}

/// What must agree between backends: the trees' texts and ids, the
/// grades, the finish reasons.
fn essence(r: &ProblemResult) -> (Value, bool, Vec<String>, Vec<Vec<u32>>) {
    let threads = r.root.threads();
    (
        serde_json::to_value(&r.trace_dict).unwrap(),
        r.solved,
        threads
            .iter()
            .map(|t| t.finish.name().to_string())
            .collect(),
        threads
            .iter()
            .flat_map(|t| t.calls.iter().map(|c| c.generated_ids.clone()))
            .collect(),
    )
}

#[test]
fn solver_trees_on_a_server_match_the_native_backend() {
    let ps = problems(8, 5);
    let dicts = solver_dicts(&ps, 2);
    let model = scripted(&ps, &dicts, 16);
    let mut native_model = model.clone();
    let native = Engine::new(&mut native_model, apr_cfg())
        .unwrap()
        .run(&ps, |_| {})
        .unwrap();
    assert!(native.iter().any(|r| r.child_threads > 0));
    for flavour in [Flavour::Vllm, Flavour::Sglang] {
        let url = serve(flavour, model.clone());
        let server = Server::new(pool(flavour, &url, 4), 8192, model.vocab_size());
        let mut engine = Engine::with_backend(server, apr_cfg()).unwrap();
        let got = engine.run(&ps, |_| {}).unwrap();
        assert_eq!(got.len(), native.len());
        for (a, b) in got.iter().zip(&native) {
            assert_eq!(essence(a), essence(b), "problem {}", a.problem);
        }
        let stats = engine.stats().clone();
        let threads: usize = native.iter().map(|r| r.root.threads().len()).sum();
        assert_eq!(stats.threads, threads);
        let cache = engine.backend().cache_stats().clone();
        if flavour == Flavour::Vllm {
            // The scripted vLLM reports half of each prompt cached.
            assert_eq!(cache.reported_calls, stats.steps);
            assert!(cache.join_prompt_tokens > 0);
            assert_eq!(cache.cached_tokens, stats.reused_tokens);
        }
    }
}

/// Limits apply on a server as natively: a call cut by its token limit, a
/// join block written by the model.
#[test]
fn a_server_call_ends_where_the_rules_end_it() {
    let tok = TraceTokenizer::new();
    let p = common::toy();
    let prompt = apr_trace::TraceMode::Apr.root_prompt(p.target, &p.nums);
    let model = ScriptedModel::new(4, 4096).with(
        None,
        &prompt,
        "Moving to Node #0\n<Sub Searches>\nmore text\n",
    );
    let mut cfg = apr_cfg();
    let url = serve(Flavour::Vllm, model.clone());
    let server = Server::new(pool(Flavour::Vllm, &url, 2), 4096, tok.vocab_size());
    let mut engine = Engine::with_backend(server, cfg.clone()).unwrap();
    let got = engine.run(std::slice::from_ref(&p), |_| {}).unwrap();
    assert_eq!(got[0].root.finish, FinishReason::WroteJoin);
    assert!(got[0].root.calls[0].text.ends_with("<Sub Searches>"));
    cfg.limits = Limits {
        max_new_tokens: 3,
        ..cfg.limits
    };
    let server = Server::new(pool(Flavour::Vllm, &url, 2), 4096, tok.vocab_size());
    let mut engine = Engine::with_backend(server, cfg).unwrap();
    let got = engine.run(std::slice::from_ref(&p), |_| {}).unwrap();
    assert_eq!(got[0].root.finish, FinishReason::MaxNewTokens);
    assert_eq!(got[0].root.calls[0].generated_ids.len(), 3);
}

#[test]
fn a_server_that_is_down_fails_the_run_with_a_clear_error() {
    // A port that was just free: nothing listens there.
    let url = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let server = Server::new(pool(Flavour::Vllm, &url, 2), 4096, 100);
    let mut engine = Engine::with_backend(server, apr_cfg()).unwrap();
    let err = engine.run(&[common::toy()], |_| {}).unwrap_err();
    assert!(
        matches!(err, Error::Server(apr_serve::Error::Unreachable { .. })),
        "{err}"
    );
}

#[test]
fn tempered_logprobs_are_refused_on_a_server() {
    // Servers return the model's own log-probabilities; GRPO on the
    // tempered policy needs the sampled distribution's, so the run stops
    // before any call instead of training on the wrong ratio.
    let url = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let mut cfg = apr_cfg();
    cfg.sampling = apr_rollout::SamplingParams {
        logprobs: apr_rollout::LogprobBase::Tempered,
        ..apr_rollout::SamplingParams::temperature(0.5)
    };
    let server = Server::new(pool(Flavour::Vllm, &url, 2), 4096, 100);
    let mut engine = Engine::with_backend(server, cfg).unwrap();
    let err = engine.run(&[common::toy()], |_| {}).unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
}
