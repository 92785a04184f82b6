//! The command-line switches that choose where rollouts are generated,
//! shared by `rollout`, `eval`, `train-grpo` and `countdown-apr-rl`.

use apr_rollout::{BackendKind, GenerationConfig};
use std::path::PathBuf;

/// Where rollouts are generated: `native` (our decoder), or `vllm` /
/// `sglang` servers (see `docs/scale-out.md`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct GenerationArgs {
    /// `native`, `vllm` or `sglang` (default: the config's, else native).
    #[arg(long)]
    pub backend: Option<BackendKind>,
    /// Server URLs, comma-separated (several spread the calls).
    #[arg(long, value_delimiter = ',')]
    pub server_url: Vec<String>,
    /// vLLM's served model name (default: the first the server lists).
    #[arg(long)]
    pub served_name: Option<String>,
    /// Calls in flight at once on the servers.
    #[arg(long)]
    pub server_concurrency: Option<usize>,
    /// Seconds before one HTTP attempt gives up.
    #[arg(long)]
    pub server_timeout: Option<f64>,
    /// Where the model's weights are written for the servers to load
    /// (before an evaluation; after every GRPO step). The servers must
    /// read this path.
    #[arg(long)]
    pub weights_dir: Option<PathBuf>,
}

impl GenerationArgs {
    /// `g` with the switches that were given.
    pub fn apply(&self, g: &mut GenerationConfig) {
        if let Some(b) = self.backend {
            g.backend = b;
        }
        if !self.server_url.is_empty() {
            g.server_urls = self.server_url.clone();
        }
        if self.served_name.is_some() {
            g.served_name = self.served_name.clone();
        }
        if let Some(c) = self.server_concurrency {
            g.concurrency = c;
        }
        if let Some(t) = self.server_timeout {
            g.timeout_s = t;
        }
        if self.weights_dir.is_some() {
            g.weights_dir = self.weights_dir.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        generation: GenerationArgs,
    }

    #[test]
    fn switches_override_only_what_they_name() {
        let cli = Cli::parse_from([
            "x",
            "--backend",
            "vllm",
            "--server-url",
            "http://a:1,http://b:2",
        ]);
        let mut g = GenerationConfig {
            concurrency: 7,
            ..GenerationConfig::default()
        };
        cli.generation.apply(&mut g);
        assert_eq!(g.backend, BackendKind::Vllm);
        assert_eq!(g.server_urls, ["http://a:1", "http://b:2"]);
        assert_eq!(g.concurrency, 7);
        assert!(Cli::try_parse_from(["x", "--backend", "tgi"]).is_err());
    }
}
