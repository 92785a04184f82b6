//! JSON over HTTP with a timeout per attempt and retries with exponential
//! backoff on transient failures ([`crate::Error::is_transient`]).

use crate::error::{Error, Result};
use serde_json::Value;
use std::time::Duration;

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retry {
    /// Attempts in all (1: no retry).
    pub attempts: u32,
    /// The wait after the first failure; each later wait doubles.
    pub first_backoff: Duration,
    /// The longest wait.
    pub max_backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 4,
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// A blocking HTTP client for JSON endpoints.
#[derive(Debug, Clone)]
pub struct HttpClient {
    agent: ureq::Agent,
    timeout: Duration,
    retry: Retry,
}

/// How much of an error body to keep in an [`Error::Status`].
const BODY_EXCERPT: usize = 400;

impl HttpClient {
    /// A client whose attempts each end after `timeout` (connecting,
    /// sending and reading the whole response), retried as `retry` says.
    pub fn new(timeout: Duration, retry: Retry) -> Self {
        let agent = ureq::AgentBuilder::new().timeout(timeout).build();
        HttpClient {
            agent,
            timeout,
            retry,
        }
    }

    /// POSTs `body` to `url` and returns the response's JSON.
    pub fn post_json(&self, url: &str, body: &Value) -> Result<Value> {
        let send = || {
            let sent = self.agent.post(url).send_json(body);
            sent.map_err(|e| self.classify(url, e))
        };
        self.with_retries(url, send, json(url))
    }

    /// GETs `url` and returns the response's JSON.
    pub fn get_json(&self, url: &str) -> Result<Value> {
        let send = || {
            self.agent
                .get(url)
                .call()
                .map_err(|e| self.classify(url, e))
        };
        self.with_retries(url, send, json(url))
    }

    /// GETs `url` and returns the response's text (for example Prometheus
    /// metrics).
    pub fn get_text(&self, url: &str) -> Result<String> {
        let send = || {
            self.agent
                .get(url)
                .call()
                .map_err(|e| self.classify(url, e))
        };
        self.with_retries(url, send, Ok)
    }

    /// Sends with `send` and reads the body with `read` until an attempt
    /// succeeds, fails for good, or the attempts run out.
    fn with_retries<T>(
        &self,
        url: &str,
        send: impl Fn() -> Result<ureq::Response>,
        read: impl Fn(String) -> Result<T>,
    ) -> Result<T> {
        let mut last = None;
        for attempt in 0..self.retry.attempts.max(1) {
            self.backoff(attempt);
            let got = send()
                .and_then(|resp| resp.into_string().map_err(|e| self.transport(url, e)))
                .and_then(&read);
            match got {
                Ok(v) => return Ok(v),
                Err(e) if e.is_transient() => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Request("no attempt".into())))
    }

    /// Sleeps before attempt `attempt` (none before the first).
    fn backoff(&self, attempt: u32) {
        if attempt == 0 {
            return;
        }
        let factor = 2u32.saturating_pow(attempt - 1);
        let wait = self
            .retry
            .first_backoff
            .saturating_mul(factor)
            .min(self.retry.max_backoff);
        std::thread::sleep(wait);
    }

    /// A transport or status error as the crate's error.
    fn classify(&self, url: &str, e: ureq::Error) -> Error {
        match e {
            ureq::Error::Status(status, resp) => Error::Status {
                url: url.into(),
                status,
                body: excerpt(&resp.into_string().unwrap_or_default()),
            },
            ureq::Error::Transport(t) => {
                let text = t.to_string();
                if text.contains("timed out") || text.contains("WouldBlock") {
                    Error::Timeout {
                        url: url.into(),
                        seconds: self.timeout.as_secs_f64(),
                    }
                } else {
                    Error::Unreachable {
                        url: url.into(),
                        reason: text,
                    }
                }
            }
        }
    }

    /// An error while reading a response body.
    fn transport(&self, url: &str, e: std::io::Error) -> Error {
        match e.kind() {
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => Error::Timeout {
                url: url.into(),
                seconds: self.timeout.as_secs_f64(),
            },
            _ => Error::Unreachable {
                url: url.into(),
                reason: e.to_string(),
            },
        }
    }
}

/// Reads a body as JSON (an empty body as `null`: control endpoints
/// answer 200 with nothing), or says what came instead.
fn json(url: &str) -> impl Fn(String) -> Result<Value> + '_ {
    move |text| {
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| Error::Malformed {
            url: url.into(),
            reason: format!("not JSON ({e}): {}", excerpt(&text)),
        })
    }
}

/// The first characters of `text`, for error messages.
fn excerpt(text: &str) -> String {
    match text.char_indices().nth(BODY_EXCERPT) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}
