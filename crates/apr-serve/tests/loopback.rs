//! The HTTP backends against a scripted server on a loopback socket:
//! recorded vLLM and SGLang responses, retries, and the failures a server
//! can produce (down, slow, malformed, another vocabulary). No network.

use apr_serve::http::{HttpClient, Retry};
use apr_serve::loopback::read_request;
use apr_serve::{CallRequest, Error, Finish, Protocol, Sampling, ServerPool, Sglang, Vllm};
use serde_json::{json, Value};
use std::io::Write;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the scripted server answers to one request.
#[derive(Clone)]
enum Reply {
    /// A status and a body.
    Send(u16, String),
    /// Read the request and never answer (until the client gives up).
    Hang,
}

/// A server on 127.0.0.1 that answers requests with `replies` in turn
/// (the last one repeats) and records each request's path and body.
struct Scripted {
    url: String,
    seen: Arc<Mutex<Vec<(String, Value)>>>,
}

fn serve(replies: Vec<Reply>) -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for (i, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { return };
            let reply = replies[i.min(replies.len() - 1)].clone();
            let log = log.clone();
            std::thread::spawn(move || {
                let Some(req) = read_request(&mut stream) else {
                    return;
                };
                log.lock().unwrap().push(req);
                match reply {
                    Reply::Send(status, body) => {
                        let head = format!(
                            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = stream.write_all(head.as_bytes());
                        let _ = stream.write_all(body.as_bytes());
                    }
                    Reply::Hang => std::thread::sleep(Duration::from_secs(5)),
                }
            });
        }
    });
    Scripted { url, seen }
}

fn client(attempts: u32) -> HttpClient {
    let retry = Retry {
        attempts,
        first_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
    };
    HttpClient::new(Duration::from_millis(500), retry)
}

fn request() -> CallRequest {
    CallRequest {
        prompt: vec![1, 17, 42],
        stop: vec!["</spawn>".into()],
        stop_ids: vec![2],
        max_new_tokens: 64,
        sampling: Sampling {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
        },
        seed: 7,
        vocab: 100,
    }
}

/// A vLLM 0.34 completion with `return_tokens_as_token_ids` and
/// `logprobs: 0`, stopped by a stop string.
fn vllm_reply(ids: &[u32]) -> String {
    let tokens: Vec<String> = ids.iter().map(|i| format!("token_id:{i}")).collect();
    let lps: Vec<f64> = ids.iter().map(|&i| -0.25 * i as f64).collect();
    json!({
        "id": "cmpl-1", "object": "text_completion", "created": 0, "model": "m",
        "choices": [{
            "index": 0, "text": "x</spawn>",
            "logprobs": {"text_offset": [0, 10], "token_logprobs": lps, "tokens": tokens,
                         "top_logprobs": null},
            "finish_reason": "stop", "stop_reason": "</spawn>"
        }],
        "usage": {"prompt_tokens": 3, "completion_tokens": ids.len(), "total_tokens": 3 + ids.len(),
                  "prompt_tokens_details": {"cached_tokens": 2}}
    })
    .to_string()
}

/// An SGLang 0.5 `/generate` response, stopped by the token id 2.
fn sglang_reply(ids: &[u32]) -> String {
    let pairs: Vec<Value> = ids
        .iter()
        .map(|&i| json!([-0.5 * i as f64, i, null]))
        .collect();
    json!({
        "text": "x", "output_ids": ids,
        "meta_info": {"id": "r1", "finish_reason": {"type": "stop", "matched": 2},
                      "prompt_tokens": 3, "completion_tokens": ids.len(), "cached_tokens": 1,
                      "output_token_logprobs": pairs}
    })
    .to_string()
}

fn one_call<P: Protocol>(
    p: P,
    s: &Scripted,
    c: HttpClient,
) -> apr_serve::Result<apr_serve::CallResponse> {
    let mut pool = ServerPool::new(p, std::slice::from_ref(&s.url), 1, c)?;
    pool.submit(9, request())?;
    let mut done = pool.wait()?;
    assert_eq!(done.len(), 1);
    let (id, got) = done.pop().unwrap();
    assert_eq!(id, 9);
    got
}

#[test]
fn vllm_calls_send_token_ids_and_read_ids_logprobs_and_stops() {
    let s = serve(vec![Reply::Send(200, vllm_reply(&[5, 6, 8]))]);
    let got = one_call(Vllm { model: "m".into() }, &s, client(1)).unwrap();
    assert_eq!(got.ids, [5, 6, 8]);
    assert_eq!(got.logprobs, [-1.25, -1.5, -2.0]);
    assert_eq!(got.finish, Finish::StopString("</spawn>".into()));
    assert_eq!(got.cached_prompt_tokens, Some(2));
    let seen = s.seen.lock().unwrap();
    let (path, body) = &seen[0];
    assert_eq!(path, "/v1/completions");
    assert_eq!(body["prompt"], json!([1, 17, 42]));
    assert_eq!(body["return_tokens_as_token_ids"], json!(true));
    assert_eq!(body["include_stop_str_in_output"], json!(true));
    assert_eq!(body["stop"], json!(["</spawn>"]));
    assert_eq!(body["stop_token_ids"], json!([2]));
    assert_eq!(
        (body["top_k"].clone(), body["seed"].clone()),
        (json!(-1), json!(7))
    );
}

#[test]
fn vllm_finish_reasons_by_hand() {
    let cases = [
        (json!("length"), json!(null), Finish::Length),
        (json!("stop"), json!(2), Finish::StopToken(2)),
        // End of sequence: null, the token kept as the last id.
        (json!("stop"), json!(null), Finish::StopToken(8)),
    ];
    for (reason, stop, want) in cases {
        let mut v: Value = serde_json::from_str(&vllm_reply(&[5, 8])).unwrap();
        v["choices"][0]["finish_reason"] = reason;
        v["choices"][0]["stop_reason"] = stop;
        let got = Vllm { model: "m".into() }
            .parse("u", &request(), &v)
            .unwrap();
        assert_eq!(got.finish, want);
    }
}

#[test]
fn sglang_calls_send_input_ids_and_read_meta_info() {
    let s = serve(vec![Reply::Send(200, sglang_reply(&[7, 2]))]);
    let got = one_call(Sglang, &s, client(1)).unwrap();
    assert_eq!(got.ids, [7, 2]);
    assert_eq!(got.logprobs, [-3.5, -1.0]);
    assert_eq!(got.finish, Finish::StopToken(2));
    assert_eq!(got.cached_prompt_tokens, Some(1));
    let seen = s.seen.lock().unwrap();
    let (path, body) = &seen[0];
    assert_eq!(path, "/generate");
    assert_eq!(body["input_ids"], json!([1, 17, 42]));
    assert_eq!(body["return_logprob"], json!(true));
    assert_eq!(body["sampling_params"]["no_stop_trim"], json!(true));
    assert_eq!(body["sampling_params"]["max_new_tokens"], json!(64));
    let mut v: Value = serde_json::from_str(&sglang_reply(&[7])).unwrap();
    v["meta_info"]["finish_reason"] = json!({"type": "length", "length": 1});
    assert_eq!(
        Sglang.parse("u", &request(), &v).unwrap().finish,
        Finish::Length
    );
}

#[test]
fn a_failing_server_is_retried_until_it_answers() {
    let s = serve(vec![
        Reply::Send(503, "{\"error\": \"loading\"}".into()),
        Reply::Send(429, "busy".into()),
        Reply::Send(200, sglang_reply(&[7, 2])),
    ]);
    let got = one_call(Sglang, &s, client(4)).unwrap();
    assert_eq!(got.ids, [7, 2]);
    assert_eq!(s.seen.lock().unwrap().len(), 3);
}

#[test]
fn a_bad_request_is_not_retried() {
    let body = "{\"error\":{\"message\":\"bad logprobs\",\"code\":400}}";
    let s = serve(vec![Reply::Send(400, body.into())]);
    let err = one_call(Sglang, &s, client(4)).unwrap_err();
    assert!(matches!(err, Error::Status { status: 400, .. }), "{err}");
    assert!(err.to_string().contains("bad logprobs"), "{err}");
    assert_eq!(s.seen.lock().unwrap().len(), 1);
}

#[test]
fn a_server_that_is_down_is_a_clear_error_not_a_hang() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let s = Scripted {
        url: format!("http://{port}"),
        seen: Default::default(),
    };
    let t0 = Instant::now();
    let err = one_call(Vllm { model: "m".into() }, &s, client(3)).unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_server_that_never_answers_times_out() {
    let s = serve(vec![Reply::Hang]);
    let t0 = Instant::now();
    let err = one_call(Sglang, &s, client(2)).unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert_eq!(s.seen.lock().unwrap().len(), 2);
    assert!(t0.elapsed() < Duration::from_secs(4));
}

#[test]
fn malformed_responses_are_errors() {
    let mut no_logprobs: Value = serde_json::from_str(&vllm_reply(&[5])).unwrap();
    no_logprobs["choices"][0]["logprobs"] = Value::Null;
    let mut bad_token: Value = serde_json::from_str(&vllm_reply(&[5])).unwrap();
    bad_token["choices"][0]["logprobs"]["tokens"] = json!(["hello"]);
    let mut short: Value = serde_json::from_str(&vllm_reply(&[5, 6])).unwrap();
    short["choices"][0]["logprobs"]["token_logprobs"] = json!([-1.0]);
    for body in [
        "<html>oops</html>".to_string(),
        no_logprobs.to_string(),
        bad_token.to_string(),
        short.to_string(),
    ] {
        let s = serve(vec![Reply::Send(200, body)]);
        let err = one_call(Vllm { model: "m".into() }, &s, client(3)).unwrap_err();
        assert!(matches!(err, Error::Malformed { .. }), "{err}");
        assert_eq!(s.seen.lock().unwrap().len(), 1, "not retried");
    }
}

#[test]
fn ids_outside_the_vocabulary_are_a_vocabulary_error() {
    let s = serve(vec![Reply::Send(200, sglang_reply(&[7, 150]))]);
    let err = one_call(Sglang, &s, client(1)).unwrap_err();
    assert!(matches!(err, Error::Vocabulary { .. }), "{err}");
    assert!(err.to_string().contains("150"), "{err}");
}

/// Twelve calls over two servers, one of which fails every call: each call
/// comes back once under its id, the failures do not stop the rest, and
/// both servers took a share.
#[test]
fn a_pool_spreads_calls_over_servers_and_keeps_failures_per_call() {
    let good = serve(vec![Reply::Send(200, sglang_reply(&[7, 2]))]);
    let bad = serve(vec![Reply::Send(400, "no".into())]);
    let urls = [good.url.clone(), bad.url.clone()];
    let mut pool = ServerPool::new(Sglang, &urls, 4, client(1)).unwrap();
    for id in 0..12 {
        pool.submit(id, request()).unwrap();
    }
    let mut outcomes = Vec::new();
    while pool.in_flight() > 0 {
        outcomes.extend(pool.wait().unwrap());
    }
    outcomes.sort_by_key(|o| o.0);
    assert_eq!(
        outcomes.iter().map(|o| o.0).collect::<Vec<_>>(),
        (0..12).collect::<Vec<_>>()
    );
    let ok = outcomes.iter().filter(|o| o.1.is_ok()).count();
    let (g, b) = (
        good.seen.lock().unwrap().len(),
        bad.seen.lock().unwrap().len(),
    );
    assert_eq!((g + b, ok), (12, g));
    assert!(g > 0 && b > 0, "{g} and {b}");
    assert!(pool.wait().is_err(), "nothing in flight");
}

#[test]
fn vllm_reloads_weights_through_collective_rpc_then_resets_the_prefix_cache() {
    let s = serve(vec![
        Reply::Send(200, "{\"results\": [null]}".into()),
        Reply::Send(200, "{\"success\": true}".into()),
    ]);
    let mut pool = ServerPool::new(
        Vllm { model: "m".into() },
        std::slice::from_ref(&s.url),
        1,
        client(1),
    )
    .unwrap();
    pool.reload_weights("/ckpt/step-3").unwrap();
    let seen = s.seen.lock().unwrap();
    assert_eq!(seen[0].0, "/collective_rpc");
    assert_eq!(
        seen[0].1,
        json!({"method": "reload_weights", "kwargs": {"weights_path": "/ckpt/step-3"}})
    );
    assert_eq!(seen[1].0, "/reset_prefix_cache");
    // A server that keeps its cache is an error.
    let s = serve(vec![
        Reply::Send(200, String::new()),
        Reply::Send(200, "{\"success\": false}".into()),
    ]);
    let mut pool = ServerPool::new(
        Vllm { model: "m".into() },
        std::slice::from_ref(&s.url),
        1,
        client(1),
    )
    .unwrap();
    assert!(pool.reload_weights("/ckpt").is_err());
    // Without VLLM_SERVER_DEV_MODE the route is missing: a 404, not retried.
    let s = serve(vec![Reply::Send(404, "{\"detail\": \"Not Found\"}".into())]);
    let mut pool = ServerPool::new(
        Vllm { model: "m".into() },
        std::slice::from_ref(&s.url),
        1,
        client(3),
    )
    .unwrap();
    let err = pool.reload_weights("/ckpt").unwrap_err();
    assert!(matches!(err, Error::Status { status: 404, .. }), "{err}");
}

#[test]
fn sglang_reloads_weights_from_disk_and_reports_a_refusal() {
    let ok = "{\"success\": true, \"message\": \"ok\", \"num_paused_requests\": 0}";
    let s = serve(vec![Reply::Send(200, ok.into())]);
    let mut pool = ServerPool::new(Sglang, std::slice::from_ref(&s.url), 1, client(1)).unwrap();
    pool.reload_weights("/ckpt/step-3").unwrap();
    let seen = s.seen.lock().unwrap();
    assert_eq!(seen[0].0, "/update_weights_from_disk");
    assert_eq!(seen[0].1["model_path"], json!("/ckpt/step-3"));
    let s = serve(vec![Reply::Send(
        200,
        "{\"success\": false, \"message\": \"shape\"}".into(),
    )]);
    let mut pool = ServerPool::new(Sglang, std::slice::from_ref(&s.url), 1, client(1)).unwrap();
    let err = pool.reload_weights("/ckpt").unwrap_err();
    assert!(err.to_string().contains("shape"), "{err}");
}

#[test]
fn weights_are_not_reloaded_while_calls_are_in_flight() {
    let s = serve(vec![Reply::Hang]);
    let mut pool = ServerPool::new(Sglang, std::slice::from_ref(&s.url), 1, client(1)).unwrap();
    pool.submit(1, request()).unwrap();
    assert!(matches!(
        pool.reload_weights("/ckpt"),
        Err(Error::Request(_))
    ));
    assert!(pool.wait().unwrap()[0].1.is_err());
}

#[test]
fn vllm_checks_the_servers_tokenization_of_a_probe() {
    let same =
        "{\"count\": 3, \"max_model_len\": 2048, \"tokens\": [5, 6, 7], \"token_strs\": null}";
    let s = serve(vec![Reply::Send(200, same.into())]);
    let pool = ServerPool::new(
        Vllm { model: "m".into() },
        std::slice::from_ref(&s.url),
        1,
        client(1),
    )
    .unwrap();
    pool.check_vocabulary("12+3", &[5, 6, 7]).unwrap();
    let seen = s.seen.lock().unwrap();
    assert_eq!(seen[0].0, "/tokenize");
    assert_eq!(seen[0].1["prompt"], json!("12+3"));
    assert_eq!(seen[0].1["add_special_tokens"], json!(false));
    let other =
        "{\"count\": 2, \"max_model_len\": 2048, \"tokens\": [5, 900], \"token_strs\": null}";
    let s = serve(vec![Reply::Send(200, other.into())]);
    let pool = ServerPool::new(
        Vllm { model: "m".into() },
        std::slice::from_ref(&s.url),
        1,
        client(1),
    )
    .unwrap();
    let err = pool.check_vocabulary("12+3", &[5, 6, 7]).unwrap_err();
    assert!(matches!(err, Error::Vocabulary { .. }), "{err}");
    assert!(err.to_string().contains("first difference at 1"), "{err}");
}
