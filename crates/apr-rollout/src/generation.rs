//! Where a run's calls are generated, chosen when the run is built: the
//! native backend on the trainer's own model, or serving engines that
//! serve a copy of it ([`GenerationConfig`], [`Generator`]).

use crate::backend::server::{CacheStats, Server};
use crate::backend::Backend;
use crate::config::RolloutConfig;
use crate::engine::{Engine, EngineStats};
use crate::error::{Error, Result};
use crate::result::ProblemResult;
use apr_model::{AprBackend, Llama};
use apr_serve::http::{HttpClient, Retry};
use apr_serve::{ServerPool, Sglang, Vllm};
use apr_trace::TraceTokenizer;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which backend generates the calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// Our decoder on the trainer's model ([`crate::backend::native`]).
    #[default]
    Native,
    /// vLLM's OpenAI-compatible server.
    Vllm,
    /// SGLang's native server.
    Sglang,
}

impl std::str::FromStr for BackendKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "native" => Ok(BackendKind::Native),
            "vllm" => Ok(BackendKind::Vllm),
            "sglang" => Ok(BackendKind::Sglang),
            _ => Err(Error::Config(format!(
                "backend {s}: native, vllm or sglang"
            ))),
        }
    }
}

/// Where calls are generated, and how to reach the servers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerationConfig {
    /// The backend.
    pub backend: BackendKind,
    /// Server URLs (such as `http://127.0.0.1:8000`); several spread the
    /// calls.
    pub server_urls: Vec<String>,
    /// vLLM's served model name; by default the first name the server's
    /// `/v1/models` lists.
    pub served_name: Option<String>,
    /// Calls in flight at once, over all servers.
    pub concurrency: usize,
    /// Seconds before one HTTP attempt gives up.
    pub timeout_s: f64,
    /// Where the model's weights are written (a Hugging Face checkpoint)
    /// for the servers to load before a run ([`Generator::sync`]): before
    /// every evaluation, after every GRPO step. The servers must read the
    /// same path. Unset: the servers are trusted to serve the model.
    pub weights_dir: Option<PathBuf>,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        GenerationConfig {
            backend: BackendKind::Native,
            server_urls: Vec::new(),
            served_name: None,
            concurrency: 64,
            timeout_s: 600.0,
            weights_dir: None,
        }
    }
}

impl GenerationConfig {
    /// Checks what a backend needs.
    pub fn validate(&self) -> Result<()> {
        if self.backend != BackendKind::Native && self.server_urls.is_empty() {
            return Err(Error::Config(format!(
                "the {:?} backend needs a server URL",
                self.backend
            )));
        }
        if self.concurrency == 0 || self.timeout_s <= 0.0 {
            return Err(Error::Config(
                "concurrency and timeout_s must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// A connected backend for runs of one model.
pub enum Generator {
    /// A fresh [`crate::LlamaStepper`] of this many slots per run.
    Native {
        /// KV slots.
        slots: usize,
    },
    /// Calls on servers.
    Server {
        /// The backend.
        server: Box<Server>,
        /// Where weights are written for the servers to load.
        weights_dir: Option<PathBuf>,
    },
}

impl Generator {
    /// Connects `cfg`'s backend for a model of `capacity` tokens and
    /// `vocab` ids: the servers' tokenizers are checked against ours.
    /// `slots` sizes the native backend.
    pub fn connect(
        cfg: &GenerationConfig,
        slots: usize,
        capacity: usize,
        vocab: usize,
    ) -> Result<Self> {
        if cfg.backend == BackendKind::Native {
            cfg.validate()?;
            return Ok(Generator::Native { slots });
        }
        let pool = server_pool(cfg)?;
        let tok = TraceTokenizer::new();
        let probe = "Current State: 24:[4, 6, 1], Operations: []\n<Calling Sub Searches>";
        pool.check_vocabulary(probe, &tok.encode(probe))?;
        let weights_dir = match &cfg.weights_dir {
            Some(d) => Some(absolute(d)?),
            None => None,
        };
        Ok(Generator::Server {
            server: Box::new(Server::new(pool, capacity, vocab)),
            weights_dir,
        })
    }

    /// The backend's name.
    pub fn name(&self) -> &'static str {
        match self {
            Generator::Native { .. } => "native",
            Generator::Server { server, .. } => Backend::name(server.as_ref()),
        }
    }

    /// Makes the servers serve `model`'s weights: writes them to the
    /// weights directory (untied) and has every server load them. Nothing
    /// to do natively or without a weights directory.
    pub fn sync<B: AprBackend>(&mut self, model: &Llama<B>) -> Result<()> {
        let Generator::Server {
            server,
            weights_dir: Some(dir),
        } = self
        else {
            return Ok(());
        };
        let tok = TraceTokenizer::new()
            .to_hf_json()
            .map_err(|e| Error::Config(e.to_string()))?;
        apr_model::checkpoint::save_untied(model, dir, Some(&tok))?;
        server.pool().reload_weights(&dir.display().to_string())?;
        Ok(())
    }

    /// Whether [`Generator::sync`] loads weights into servers.
    pub fn syncs(&self) -> bool {
        matches!(
            self,
            Generator::Server {
                weights_dir: Some(_),
                ..
            }
        )
    }

    /// Runs `cfg` on `problems`: natively on `model`, or on the servers
    /// (which must serve `model`: see [`Generator::sync`]). The results
    /// in (problem, sample) order and the backend's counters; `on_done`
    /// sees each result as it finishes.
    pub fn run<B: AprBackend, P: apr_trace::Task>(
        &mut self,
        model: &Llama<B>,
        problems: &[P],
        cfg: &RolloutConfig,
        on_done: impl FnMut(&ProblemResult),
    ) -> Result<(Vec<ProblemResult>, EngineStats)> {
        match self {
            Generator::Native { slots } => {
                crate::stepper::run_llama(model, problems, cfg, *slots, on_done)
            }
            Generator::Server { server, .. } => {
                let mut engine = Engine::with_backend(server.as_mut(), cfg.clone())?;
                let results = engine.run(problems, on_done)?;
                Ok((results, engine.stats().clone()))
            }
        }
    }

    /// The servers' prefix-cache counters of the last run (none natively).
    pub fn cache_stats(&self) -> Option<&CacheStats> {
        match self {
            Generator::Native { .. } => None,
            Generator::Server { server, .. } => Some(server.cache_stats()),
        }
    }
}

/// A pool of calls on `cfg`'s servers (an error for the native backend).
/// vLLM's served name is `cfg.served_name`, else the first model the
/// first server lists.
pub fn server_pool(cfg: &GenerationConfig) -> Result<ServerPool> {
    cfg.validate()?;
    let client = HttpClient::new(Duration::from_secs_f64(cfg.timeout_s), Retry::default());
    let urls = &cfg.server_urls;
    Ok(match cfg.backend {
        BackendKind::Native => {
            return Err(Error::Config("the native backend has no servers".into()))
        }
        BackendKind::Vllm => {
            let model = match &cfg.served_name {
                Some(name) => name.clone(),
                None => served_name(&client, &urls[0])?,
            };
            ServerPool::new(Vllm { model }, urls, cfg.concurrency, client)?
        }
        BackendKind::Sglang => ServerPool::new(Sglang, urls, cfg.concurrency, client)?,
    })
}

/// The first model name a vLLM server lists at `/v1/models`.
fn served_name(client: &HttpClient, url: &str) -> Result<String> {
    let url = format!("{}/v1/models", url.trim_end_matches('/'));
    let v = client.get_json(&url)?;
    v.get("data")
        .and_then(|d| d.get(0))
        .and_then(|m| m.get("id"))
        .and_then(|id| id.as_str())
        .map(str::to_string)
        .ok_or_else(|| {
            Error::Server(apr_serve::Error::Malformed {
                url,
                reason: "no model id in /v1/models".into(),
            })
        })
}

fn absolute(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.into(),
        source,
    })?;
    std::fs::canonicalize(dir).map_err(|source| Error::Io {
        path: dir.into(),
        source,
    })
}
